"""SpeechBrain ``Brain`` classes and data pipelines of the two stages.

- :mod:`deep_speaker_sb.brains.base`: :class:`EmbeddingBrain`, what both
  stages share (the embedding forward pass, the end of a validation epoch,
  DDP wrapping on CPU);
- :mod:`deep_speaker_sb.brains.softmax`: softmax (speaker classification)
  pre-training;
- :mod:`deep_speaker_sb.brains.triplet`: triplet-loss fine-tuning.
"""
