"""Legacy-schema (v0) ``.ms`` files: read them, translate them op by op, write the current (MSL2) schema; the
FlatBuffer field tables of both schemas (`schema`). The file-level API (upgrade, summary) is `modelfiles.upgrade`.
"""
