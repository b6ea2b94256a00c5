"""TAML (Jamal & Qi, CVPR 2019), entropy-maximisation variant: a baseline of Table 4.

Each task's outer loss gets
  - weight * H,  H = N * mean_x sum_n -p_n(x) log p_n(x),
where p(x) is the softmax of the UN-adapted model and x runs over the task's
support and query inputs (one forward call each, so BN sees the same batches
as elsewhere). H is the per-example prediction entropy of Jamal & Qi's
H_T(f_theta), put on FINN's cross-entropy scale (summed over examples / K).
A memorising initialisation predicts confidently (H = 0) and pays for it;
the uniform prediction earns the most (N log N). The entropy *reduction*
term H_T(f_phi) - H_T(f_theta) of the full TAML objective is left out. The
logged `query_loss` of taml includes the term.
"""
import dataclasses

import jax
import jax.numpy as jnp

from mr_meta import objective


def prediction_entropy(logits: jax.Array) -> jax.Array:
  """TAML's H on FINN's loss scale: N * mean over examples of the entropy of p(y|x)."""
  log_p = jax.nn.log_softmax(logits)
  return logits.shape[-1] * jnp.mean(-jnp.sum(jnp.exp(log_p) * log_p, axis=-1))


def with_entropy_reward(learner: objective.MetaLearner, unadapted: objective.MetaLearner,
                        weight: float) -> objective.MetaLearner:
  """Adds TAML's -weight * H(un-adapted predictions on the task's inputs) to each task loss."""
  def task_loss(params, key, task: objective.Task):
    loss, kl = learner.task_loss(params, key, task)
    entropy_key = jax.random.fold_in(key, 1)
    entropies = [prediction_entropy(unadapted.predict(
        params, entropy_key, task.support_x, task.support_y, x))
                 for x in (task.support_x, task.query_x)]
    return loss - weight * jnp.mean(jnp.stack(entropies)), kl
  return dataclasses.replace(learner, task_loss=task_loss)
