"""Deep Speaker (Li et al. 2017) speaker embeddings on SpeechBrain.

The package is the library behind the recipe scripts at the top level of
the repository: data preparation (:mod:`deep_speaker_sb.data`), the ResCNN
lobe (:mod:`deep_speaker_sb.lobes.rescnn`), losses, training brains,
scoring and the pretrained inference interface.
"""

__version__ = "0.1.0"
