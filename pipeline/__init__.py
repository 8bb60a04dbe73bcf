"""score2audio: turn a score (MusicXML or MIDI) into a finished recording.

Stages, one subpackage each: ``score`` (load, perform) → ``voices`` (assign) → ``render`` →
``mix`` → ``master`` → ``output`` (export), with the signal code they share in ``dsp`` and the
data files' loaders in ``settings``. ``pipeline.run`` is the public API (``render_score``,
``render_album``, ``render_to_mix``, ``master_mix``, ``perform_to_midi``), and the speed
mechanics are the ``pipeline.speed.accelerator.Accelerator`` it may be handed.
"""
__version__ = "0.1.0"


def _no_huge_pages() -> None:
    """Ask numpy not to back its large arrays with transparent huge pages. Where the kernel
    compacts memory for them on demand (``defrag=madvise``, a common default) and the page
    cache fills the memory (it does after gigabytes of stems), a fresh whole-length array
    stalls: 0.5 s for 226 MB against 0.09 s in ordinary pages on the Große Fuge's master."""
    import os

    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # read when numpy is first imported
    # and no BLAS worker threads: the pipeline's matrix products are 2×2 by a block, and
    # OpenBLAS's workers spin after each call on cores the synths and the helper need
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy

    # numpy's private switch, read in numpy 2.x (pyproject.toml: numpy<3); numpy 1.x names
    # it numpy.core and gets only the environment variable
    try:  # numpy imported before us: its switch
        numpy._core.multiarray._set_madvise_hugepage(os.environ["NUMPY_MADVISE_HUGEPAGE"] != "0")
    except AttributeError:
        pass


_no_huge_pages()
