"""Default folders of the recipe, in one place.

The command-line scripts and error messages take them from here; the
YAML files spell the same values (``results_root``, ``prep_folder``) and a
test keeps them equal, so that a changed default changes everywhere.

Example
-------
>>> PREP_FOLDER, f"{RESULTS_ROOT}/triplet/<seed>/{PRETRAINED_DIR}"
('data/vivos8k', 'results/triplet/<seed>/pretrained')
"""

#: Where ``data_prep.py`` / ``train_softmax.py`` put the prepared data.
PREP_FOLDER = "data/vivos8k"
#: The root of the stages' output folders (``<root>/<stage>/<seed>``).
RESULTS_ROOT = "results"
#: The triplet stage's results (``<seed>/pretrained`` below it).
TRIPLET_RESULTS = f"{RESULTS_ROOT}/triplet"
#: The export folder's name inside a triplet output folder.
PRETRAINED_DIR = "pretrained"
