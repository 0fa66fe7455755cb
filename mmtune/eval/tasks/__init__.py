"""Built-in eval tasks; importing this package registers every one of them."""
from mmtune.eval.tasks import benchmarks, world  # noqa: F401
