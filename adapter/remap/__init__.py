"""``adapter remap``: translate stored raw messages again with the current mappings, show
what would change per resource (summarised by mapping rule and path), and store the
changes as new versions (which then go to the destinations like any change). docs/remap.md.
"""
