"""Training code of the package's models (imports scikit-learn, Keras, MediaPipe).

Never imported by nodes or inference code; the ``emotion-perception train`` commands
call into these modules. Each module documents the exact command that reproduces the
shipped artefact.
"""
