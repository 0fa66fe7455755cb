"""Model families, group resolution and loading."""
from mmtune.models.family import (  # noqa: F401
    GROUPS,
    GroupNotFoundError,
    ModelFamily,
    ModelGroups,
    families,
    get_family,
    register_family,
)
