"""The benchmark suite behind `vatcodec bench`: rate-distortion of our codec next to classical codecs."""

from .run import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench"]
