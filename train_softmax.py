#!/usr/bin/env python3
"""Deep Speaker stage 1: softmax pre-training of the ResCNN.

Prepares VIVOS (unless ``--skip_prep true``; preparation is idempotent)
and the augmentation files (with ``augment: True``, also idempotent),
then trains the embedding model and a speaker classifier on the training
speakers, validating speaker accuracy on held-out utterances.  Running the
same command again resumes from the last checkpoint.  With ``init_from:
pretrained`` and ``init_pretrained: <export folder>`` the embedding model
and normalizer start from a trained export (fine-tuning; the classifier is
new, one class per training speaker of this data).

Usage:
    python train_softmax.py hparams/softmax.yaml --data_folder /data/vivos
    torchrun --nproc_per_node=4 train_softmax.py hparams/softmax.yaml \\
        --data_folder /data/vivos
    python train_softmax.py hparams/softmax.yaml --data_folder /data/vivos \\
        --init_from pretrained --init_pretrained results/triplet/1986/pretrained
    # any YAML key can be overridden: --channels "[8, 16, 32, 64]" ...
    # SpeechBrain run options: --device cpu, --precision bf16, ...

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import sys

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from torch.utils.data import DataLoader

from deep_speaker_sb.augment import prepare_from_hparams
from deep_speaker_sb.brains.softmax import SoftmaxBrain, dataio_prep
from deep_speaker_sb.cli import (
    load_recipe_hparams,
    parse_recipe_args,
    run_cli,
)
from deep_speaker_sb.data.prep import check_prepared_rate
from deep_speaker_sb.data.shards import use_shards, write_shards
from deep_speaker_sb.data.vivos import prepare_vivos
from deep_speaker_sb.finetune import (
    PRETRAINED,
    check_init_options,
    init_from_pretrained,
)
from deep_speaker_sb.utils import printable

INIT_CHOICES = ("scratch", PRETRAINED)


def main(argv: list[str] | None = None) -> int:
    """Runs softmax pre-training; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides = parse_recipe_args(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_recipe_hparams(hparams_file, overrides)
    check_init_options(hparams, INIT_CHOICES)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    # Fine-tuning: the export's weights on a fresh start (checked first, so
    # a model mismatch is reported before any data preparation)
    fresh = hparams["checkpointer"].find_checkpoint() is None
    if fresh and hparams["init_from"] == PRETRAINED:
        init_from_pretrained(hparams["init_pretrained"], hparams["modules"])
    if not hparams["skip_prep"]:
        run_on_main(
            prepare_vivos,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["prep_folder"],
                "sample_rate": hparams["sample_rate"],
                "seg_dur": hparams["seg_dur"],
                "min_dur": hparams["min_dur"],
                "valid_ratio": hparams["valid_ratio"],
                "num_trials": hparams["num_trials"],
                "seed": hparams["prep_seed"],
                "cal_speakers": hparams["cal_speakers"],
                "num_workers": hparams["prep_workers"],
            },
        )
        if use_shards(hparams):
            run_on_main(
                write_shards,
                args=[hparams["prep_folder"]],
                kwargs={
                    "shard_size": hparams["shard_size"],
                    "seed": hparams["prep_seed"],
                },
            )
    check_prepared_rate(hparams["prep_folder"], hparams["sample_rate"])
    # The noise, babble and RIR files of the augmentation (once; a no-op
    # with augment: False)
    run_on_main(prepare_from_hparams, args=[hparams])
    train_data, valid_data, label_encoder = dataio_prep(hparams)

    # one class per training speaker and per speed copy of it
    copies = hparams.get("speaker_copies")
    n_classes = len(label_encoder) * (copies.n_copies if copies else 1)
    classifier = hparams["classifier"](n_speakers=n_classes)
    hparams["checkpointer"].add_recoverable("classifier", classifier)
    brain = SoftmaxBrain(
        modules={**hparams["modules"], "classifier": classifier},
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if isinstance(train_data, DataLoader):  # shards: a new order per epoch
        brain.train_sampler = train_data.dataset
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs=hparams["dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )

    best = hparams["checkpointer"].find_checkpoint(max_key="ACC")
    if best is not None and if_main_process():
        print(
            f"best validation accuracy: {100 * best.meta['ACC']:.2f}% "
            f"(epoch {best.meta.get('epoch', '?')}, {len(label_encoder)} "
            f"speakers); checkpoints in {printable(hparams['save_folder'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
