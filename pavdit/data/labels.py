"""Where a clip's class label comes from: sub-folders, a class-map file, or AIST++ file names."""
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

# AIST++ names start with the dance genre, e.g. gBR_sBM_c01_d04_mBR0_ch01.mp4 -> Break.
AIST_GENRES = {
    'gBR': 'break', 'gPO': 'pop', 'gLO': 'lock', 'gMH': 'middle hip-hop',
    'gLH': 'LA style hip-hop', 'gHO': 'house', 'gWA': 'waack', 'gKR': 'krump',
    'gJS': 'street jazz', 'gJB': 'ballet jazz',
}
AIST_PATTERN = re.compile(r'^(g[A-Z]{2})_s[A-Z]{2}_c\d+_d\d+_m[A-Z]{2}\d+_ch\d+')


def load_class_map(path: str) -> List[str]:
    """A class-map file: JSON ``{"class name": index, ...}`` -> class names ordered by index."""
    try:
        mapping = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f'class_map {path}: cannot read a JSON {{"class": index}} map ({err})')
    if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
        raise ValueError(f'class_map {path}: expected {{"class name": index}} with indices '
                         f'0..N-1, got {mapping!r:.200}')
    return sorted(mapping, key=mapping.get)


def aist_genre(name: str) -> Optional[str]:
    match = AIST_PATTERN.match(Path(name).name)
    return AIST_GENRES.get(match.group(1)) if match else None


def class_names_from(relative_paths: Sequence[str], source: str,
                     class_map: Optional[str] = None) -> Dict[str, Optional[str]]:
    """Class name (or None) of every path, relative to the split folder.

    ``source``: 'folder' (the first sub-folder), 'aist' (the genre in the file name), 'none', or
    'auto' (folder when files sit in sub-folders, else AIST++ names when they match, else none).
    With ``class_map``, a name outside the map raises.
    """
    if source == 'auto':
        if relative_paths and all(len(Path(p).parts) > 1 for p in relative_paths):
            source = 'folder'
        elif relative_paths and all(aist_genre(p) for p in relative_paths):
            source = 'aist'
        else:
            source = 'none'
    if source == 'folder':
        names = {p: Path(p).parts[0] if len(Path(p).parts) > 1 else None for p in relative_paths}
    elif source == 'aist':
        names = {p: aist_genre(p) for p in relative_paths}
    elif source == 'none':
        names = {p: None for p in relative_paths}
    else:
        raise ValueError(f"label_source must be 'auto', 'folder', 'aist' or 'none', got {source!r}")
    if class_map is not None:
        known = set(load_class_map(class_map))
        unknown = sorted({n for n in names.values() if n is not None and n not in known})
        if unknown:
            raise ValueError(f'class_map {class_map} lacks classes {unknown}')
    return names
