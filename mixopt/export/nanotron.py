"""nanotron: a ``data_stages`` entry with a Nanoset dataset (``dataset_folder``,
``dataset_weights``).

Nanosets draw fixed-length token sequences from datatrove-tokenized folders, so the weights are
token shares. The schema is that of nanotron's repository (``DatasetStageArgs`` → ``DataArgs`` →
``NanosetDatasetsArgs``); nanotron's release on PyPI (0.4) predates Nanosets and data stages, so
this file is for a nanotron installed from its repository. mixopt's token files are not in
datatrove's format: each ``dataset_folder`` is the folder of mixopt's token file, to be replaced
by the folder of your datatrove-tokenized copy of that domain.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mixopt.export.base import Exporter
from mixopt.export.blend import Blend


class NanotronExport(Exporter):
    name = "nanotron"
    title = "nanotron data stage (Nanoset)"
    unit = "tokens"

    def render(self, blend: Blend) -> str:
        active = blend.active(self.unit)
        folders = [str(Path(s.token_file or "").parent) for s, _ in active]
        doc = {
            "data_stages": [
                {
                    "name": f"mixopt {blend.job}",
                    "start_training_step": 1,
                    "data": {
                        "dataset": {
                            "dataset_folder": folders,
                            "dataset_weights": [w for _, w in active],
                        },
                        "num_loading_workers": 1,
                        "seed": blend.seed,
                    },
                }
            ]
        }
        notes = (
            "nanotron Nanoset data stage (goes under the config's top level; domains in order:",
            f"{', '.join(s.name for s, _ in active)}). dataset_folder: the folders of mixopt's "
            "token files, which are",
            "not datatrove-tokenized: point each at your tokenized copy of that domain",
        )
        return self.header(blend, *notes) + yaml.safe_dump(doc, sort_keys=False)
