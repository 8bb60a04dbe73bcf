"""score2audio: turn a score (MusicXML or MIDI) into a finished recording.

Stages (one module each): load → perform → assign → render → mix → master → export;
:func:`pipeline.core.render_score` runs them all.
"""
__version__ = "0.1.0"
