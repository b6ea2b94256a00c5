"""Where a compiled step's time goes: op time by kind, from a jax.profiler trace.

The trace names each op the runtime executes after its HLO instruction, and
the compiled HLO says what the instruction (or the fusion it calls) computes,
which gives its kind: matmuls, the slices, pads and concatenations of the
patch lowering and its gradient (col2im), layout copies, reductions, or
elementwise arithmetic.
"""
import collections
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Any, Callable, NamedTuple

import jax

MATMUL = 'matmuls (dot, convolution)'
SLICING = 'slices, pads, concatenations (patches, col2im)'
COPIES = 'transposes and copies'
REDUCTIONS = 'reductions (BN statistics, bias and loss sums)'
ELEMENTWISE = 'elementwise'
KINDS = (MATMUL, SLICING, COPIES, REDUCTIONS, ELEMENTWISE)

# The first kind whose opcodes an op contains names it: a fusion holding a dot
# is a matmul whatever else is fused into it.
_OPCODES_OF_KIND = (
    (MATMUL, {'dot', 'convolution'}),
    (REDUCTIONS, {'reduce', 'reduce-window'}),
    (SLICING, {'slice', 'dynamic-slice', 'pad', 'concatenate', 'dynamic-update-slice'}),
    (COPIES, {'transpose', 'copy'}),
)
_COMPUTATION = re.compile(r'^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$')
_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$')
_OPCODE = re.compile(r'(?:^|\s)([a-z][\w\-]*)\(')  # the first `word(` after the type
_CALLS = re.compile(r'\bcalls=%?([\w.\-]+)')
_CONTROL_FLOW = {'while', 'conditional', 'call'}


def op_kinds(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> kind, for every non-control-flow instruction of a module."""
  opcodes, calls = {}, {}
  computation_ops = collections.defaultdict(set)
  computation_calls = collections.defaultdict(set)  # fusions nested in a computation
  computation = None
  for line in hlo_text.splitlines():
    if match := _COMPUTATION.match(line):  # headers are the unindented lines
      computation = match.group(1)
    elif (match := _INSTRUCTION.match(line)) and (opcode := _OPCODE.search(match.group(2))):
      name, opcode = match.group(1), opcode.group(1)
      opcodes[name] = opcode
      computation_ops[computation].add(opcode)
      if (called := _CALLS.search(line)) and opcode not in _CONTROL_FLOW:
        calls[name] = called.group(1)
        computation_calls[computation].add(called.group(1))

  def opcodes_in(computation, seen):
    found = set(computation_ops[computation])
    for nested in computation_calls[computation] - seen:
      found |= opcodes_in(nested, seen | {nested})
    return found

  kinds = {}
  for name, opcode in opcodes.items():
    if opcode in _CONTROL_FLOW:  # a loop's event spans its body's ops: not counted twice
      continue
    found = {opcode} | (opcodes_in(calls[name], {calls[name]}) if name in calls else set())
    kinds[name] = next((kind for kind, ops in _OPCODES_OF_KIND if found & ops), ELEMENTWISE)
  return kinds


class OpTime(NamedTuple):
  seconds: float  # summed over the runtime's threads
  count: int      # executions


def op_times(call: Callable[[], Any]) -> dict[str, OpTime]:
  """Time and executions of each traced op (or runtime event) over one `call()`."""
  with tempfile.TemporaryDirectory() as log_dir:
    jax.profiler.start_trace(log_dir)
    try:
      jax.block_until_ready(call())
    finally:
      jax.profiler.stop_trace()
    traces = glob.glob(os.path.join(log_dir, '**', '*.trace.json.gz'), recursive=True)
    if not traces:
      raise RuntimeError(f'jax.profiler wrote no *.trace.json.gz under {log_dir}.')
    with gzip.open(traces[0]) as f:
      events = json.load(f)['traceEvents']
  seconds, counts = collections.Counter(), collections.Counter()
  for event in events:
    if event.get('ph') == 'X':  # complete events; 'dur' in microseconds
      seconds[event['name']] += event['dur'] / 1e6
      counts[event['name']] += 1
  return {name: OpTime(seconds[name], counts[name]) for name in seconds}


def time_by_kind(call: Callable[[], Any], hlo_text: str) -> dict[str, OpTime]:
  """Op time of one `call()` of a compiled program by kind (runtime events left out)."""
  kinds = op_kinds(hlo_text)
  by_kind = dict.fromkeys(KINDS, OpTime(0.0, 0))
  for name, (seconds, count) in op_times(call).items():
    if name in kinds:
      total = by_kind[kinds[name]]
      by_kind[kinds[name]] = OpTime(total.seconds + seconds, total.count + count)
  return by_kind
