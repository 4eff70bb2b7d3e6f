"""SpeechBrain ``Brain`` classes and data pipelines of the two stages.

- :mod:`deep_speaker_sb.brains.softmax`: softmax (speaker classification)
  pre-training, plus the pieces both stages share: manifest checks, the
  audio pipeline, the feature + embedding helper and plain batch norm for
  DDP on CPU.
- :mod:`deep_speaker_sb.brains.triplet`: triplet-loss fine-tuning.
"""
