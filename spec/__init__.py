"""ocirun's own JSON Schemas for runtime-spec 1.3 (config, state, features).

Installed as the package ``ocirun.spec`` so the runtime finds them next to its code.
"""
import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
