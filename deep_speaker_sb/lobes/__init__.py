"""Neural building blocks ("lobes") of deep-speaker-sb.

- :mod:`deep_speaker_sb.lobes.rescnn`: the ResCNN speaker-embedding network
  of Deep Speaker (Li et al., 2017).
"""
