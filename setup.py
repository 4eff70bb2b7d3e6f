"""Installs the deep_speaker_sb package (Deep Speaker on SpeechBrain)."""

from setuptools import find_packages, setup

setup(
    name="deep_speaker_sb",
    version="0.1.0",
    description=(
        "Deep Speaker (Li et al. 2017) speaker embeddings as a SpeechBrain "
        "plugin and VIVOS recipe"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["deep_speaker_sb", "deep_speaker_sb.*"]),
    python_requires=">=3.10",
    install_requires=[
        "speechbrain>=1.1,<1.2",
        "torch>=2.7.1",
        "torchaudio>=2.7.1",
        "hyperpyyaml>=1.2",
        "numpy>=1.24",
        "pandas>=1.5",
        "scipy>=1.9",
        "soundfile>=0.12",
        "tqdm>=4.60",
        "matplotlib>=3.6",
    ],
    extras_require={
        # the torch-free runtime (deep_speaker_sb.runtime) and ONNX export
        "onnx": [
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "numpy>=1.24",
            "scipy>=1.9",
            "soundfile>=0.12",
        ],
        # WebDataset shards for large corpora (data_prep.py --format shards)
        "shards": ["webdataset>=0.2.86"],
        # the pretrained peer of bench/inference_throughput.py; never a
        # dependency of the package or its tests
        "bench": ["resemblyzer>=0.1.4"],
        "dev": [
            "pytest>=7",
            "ruff>=0.4",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.2",
            "webdataset>=0.2.86",
        ],
    },
    license="Apache-2.0",
)
