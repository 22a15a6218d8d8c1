"""Splicing at a block boundary, shared by the torch LMs the fixtures are exported from."""


def run_blocks(blocks, x, hook_layer=None, replace=None):
    """x through the blocks; returns (x, the residual after block hook_layer), with `replace`
    spliced in place of that residual when given."""
    hooked = None
    for i, b in enumerate(blocks):
        x = b(x)
        if i == hook_layer:
            hooked = x
            if replace is not None:
                x = replace
    return x, hooked
