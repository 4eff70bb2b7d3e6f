#!/usr/bin/env python3
"""Deep Speaker stage 2: triplet-loss fine-tuning of the ResCNN.

Starts from the best checkpoint of the softmax stage (``init_from:
softmax``, the default), from random weights (``init_from: scratch``) or
from an export folder (``init_from: pretrained`` with ``init_pretrained:
<folder>``: fine-tuning a trained model on new speakers),
scores the validation trials once before training (logged as epoch 0),
trains on P speakers x K segments batches with the cosine triplet loss,
keeps the checkpoint with the lowest validation EER and exports it to
``<output_folder>/pretrained``.  Running the same command again resumes;
``--export_only True`` re-exports the best checkpoint without training.

Usage:
    python train_triplet.py hparams/triplet.yaml
    python train_triplet.py hparams/triplet.yaml --mining hardest \\
        --speakers_per_batch 8 --n_per_speaker 4
    python train_triplet.py hparams/triplet.yaml --export_only True
    python train_triplet.py hparams/triplet.yaml --init_from pretrained \\
        --init_pretrained results/triplet/1986/pretrained --lr 0.0001
    torchrun --nproc_per_node=4 train_triplet.py hparams/triplet.yaml
    # SpeechBrain run options: --device cpu, --precision bf16, ...

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import sys

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main

from deep_speaker_sb.augment import prepare_from_hparams
from deep_speaker_sb.brains.triplet import (
    TripletBrain,
    dataio_prep,
    export_best,
    export_initial,
    init_from_softmax,
    load_initial_stats,
    make_train_loader,
    save_initial_stats,
)
from deep_speaker_sb.cli import (
    load_recipe_hparams,
    parse_recipe_args,
    run_cli,
)
from deep_speaker_sb.data.prep import check_prepared_rate
from deep_speaker_sb.finetune import (
    PRETRAINED,
    check_init_options,
    init_from_pretrained,
)
from deep_speaker_sb.utils import printable

INIT_CHOICES = ("softmax", "scratch", PRETRAINED)


def main(argv: list[str] | None = None) -> int:
    """Runs the triplet stage (or only the export); returns the status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    hparams_file, run_opts, overrides = parse_recipe_args(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_recipe_hparams(hparams_file, overrides)
    check_init_options(hparams, INIT_CHOICES)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if not hparams["export_only"]:
        train(hparams, run_opts)

    run_on_main(export_best, args=[hparams])
    if if_main_process():
        _print_summary(hparams)
    return 0


def train(hparams: dict, run_opts: dict) -> None:
    """Initializes (on a fresh start), scores epoch 0, trains."""
    check_prepared_rate(hparams["prep_folder"], hparams["sample_rate"])
    checkpointer = hparams["checkpointer"]
    fresh = checkpointer.find_checkpoint() is None
    if fresh and hparams["init_from"] == "softmax":
        init_from_softmax(hparams["softmax_ckpt_folder"], hparams["modules"])
    elif fresh and hparams["init_from"] == PRETRAINED:
        init_from_pretrained(hparams["init_pretrained"], hparams["modules"])
    # The noise, babble and RIR files of the augmentation (once; a no-op
    # with augment: False)
    run_on_main(prepare_from_hparams, args=[hparams])
    train_data, valid_data, sampler = dataio_prep(hparams)

    brain = TripletBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
    )
    initial = load_initial_stats(hparams["output_folder"]) if fresh else None
    if initial is not None:
        # A run killed before its first checkpoint scored (and logged)
        # epoch 0 of the same initial model already: not logged twice.
        brain.valid_stats = initial
    elif fresh:
        # Epoch 0: the validation EER of the initial (softmax) model.
        brain.evaluate(
            valid_data,
            # a copy: evaluate() adds keys to the dict it is given
            test_loader_kwargs=dict(hparams["valid_dataloader_options"]),
            progressbar=False,
        )
        run_on_main(
            save_initial_stats,
            args=[hparams["output_folder"], brain.valid_stats],
        )
    if fresh:
        run_on_main(export_initial, args=[hparams, brain.valid_stats])

    # The sampler is rank-aware: SpeechBrain must not wrap it for DDP, so
    # the DataLoader is built here; fit() calls train_sampler.set_epoch().
    brain.train_sampler = sampler
    brain.fit(
        brain.hparams.epoch_counter,
        make_train_loader(
            train_data, sampler, **hparams["train_dataloader_options"]
        ),
        valid_data,
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )


def _print_summary(hparams: dict) -> None:
    best = hparams["checkpointer"].find_checkpoint(min_key="EER")
    initial = load_initial_stats(hparams["output_folder"])
    if initial is not None:
        print(
            f"validation EER before triplet training "
            f"({hparams['init_from']} init): {100 * initial['EER']:.2f}%"
        )
    print(
        f"best validation EER after triplet training: "
        f"{100 * best.meta['EER']:.2f}% (epoch {best.meta.get('epoch', '?')}, "
        f"threshold {best.meta['threshold']:.4f}); exported to "
        f"{printable(hparams['pretrained_folder'])}"
    )
    if initial is not None and best.meta["EER"] > initial["EER"]:
        print(
            "warning: triplet training did not improve on the initial "
            "model; try mining: semihard, a lower lr or more epochs"
        )


if __name__ == "__main__":
    sys.exit(run_cli(main))
