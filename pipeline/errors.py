"""One exception tree for everything the pipeline refuses to do.

Every message names the file or setting at fault and, where it helps, how to fix it; the CLI
prints it as one line and exits with code 2.
"""


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ScoreError(PipelineError):
    """The score cannot be read or performed."""


class SoundfontError(PipelineError):
    """No usable soundfont, or a soundfont cannot be loaded."""


class TemplateError(PipelineError):
    """An ensemble template is missing or invalid."""


class PresetError(PipelineError):
    """A delivery preset is missing or invalid."""


class SidecarError(PipelineError):
    """A piece's sidecar (``<score-name>.toml`` or ``piece.toml``) is invalid."""


class ReferenceTrackError(PipelineError):
    """A reference track for mastering cannot be read or is unusable."""


class AudioFileError(PipelineError):
    """An audio file given to be mastered or metered cannot be read or is unusable."""


class RenderError(PipelineError):
    """FluidSynth is missing or synthesis failed."""


class OutputError(PipelineError):
    """The output folder or a file in it cannot be written."""
