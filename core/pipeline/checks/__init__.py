"""One module per policy area; each exposes `check(view, settings) -> list[Finding]`
(see core/pipeline/registry.py for the order and the rules every check keeps)."""
