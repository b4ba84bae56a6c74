"""Writes a small, real PMTiles v3 vector basemap of central Jakarta for the browser tests.

Tiles are Mapbox Vector Tiles encoded here by hand (protobuf, per the MVT 2.1 spec) with the
layer names and `kind` values of the Protomaps basemap (`earth`, `water`, `roads`), so the map is
drawn exactly as an Indonesia extract would be; the archive is written with the `pmtiles` package
(PyPI). Usage: python3 make_pmtiles.py OUT.pmtiles
"""

import gzip
import math
import sys

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

EXTENT = 4096
# Around Monas, central Jakarta: [min_lng, min_lat, max_lng, max_lat].
BBOX = (106.78, -6.23, 106.87, -6.14)
ZOOMS = range(10, 16)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def length_delimited(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def packed(field, values):
    return length_delimited(field, b"".join(varint(v) for v in values))


def zigzag(n):
    return (n << 1) ^ (n >> 31)


def command(cid, count):
    return (cid & 0x7) | (count << 3)


def geometry(points, polygon):
    """MoveTo the first point, LineTo the rest (ClosePath for polygons), as deltas."""
    cmds = [command(1, 1)]
    x0, y0 = points[0]
    cmds += [zigzag(x0), zigzag(y0)]
    cmds.append(command(2, len(points) - 1))
    px, py = x0, y0
    for x, y in points[1:]:
        cmds += [zigzag(x - px), zigzag(y - py)]
        px, py = x, y
    if polygon:
        cmds.append(command(7, 1))
    return cmds


def layer(name, features):
    """features: [(geom_type, points, {key: str})]; geom_type 2 = line, 3 = polygon."""
    keys, values, encoded = [], [], b""
    for fid, (gtype, points, props) in enumerate(features, start=1):
        tags = []
        for k, v in props.items():
            if k not in keys:
                keys.append(k)
            if v not in values:
                values.append(v)
            tags += [keys.index(k), values.index(v)]
        body = key(1, 0) + varint(fid) + packed(2, tags) + key(3, 0) + varint(gtype)
        body += packed(4, geometry(points, gtype == 3))
        encoded += length_delimited(2, body)
    out = key(15, 0) + varint(2) + length_delimited(1, name.encode())
    out += encoded
    for k in keys:
        out += length_delimited(3, k.encode())
    for v in values:
        out += length_delimited(4, length_delimited(1, v.encode()))
    out += key(5, 0) + varint(EXTENT)
    return length_delimited(3, out)


def tile_xy(lng, lat, z):
    n = 2 ** z
    x = (lng + 180.0) / 360.0 * n
    y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
    return x, y


def to_tile(lng, lat, z, tx, ty):
    x, y = tile_xy(lng, lat, z)
    return int(round((x - tx) * EXTENT)), int(round((y - ty) * EXTENT))


# Streets as (kind, name, [(lng, lat), ...]).
ROADS = [
    ("major_road", "Jalan M.H. Thamrin", [(106.8227, -6.2300), (106.8227, -6.1850), (106.8250, -6.1700)]),
    ("major_road", "Jalan Medan Merdeka Selatan", [(106.8100, -6.1820), (106.8400, -6.1820)]),
    ("minor_road", "Jalan Kebon Sirih", [(106.8150, -6.1860), (106.8380, -6.1860)]),
    ("minor_road", "Jalan Abdul Muis", [(106.8160, -6.1900), (106.8165, -6.1700)]),
    ("highway", "Jalan Tol Dalam Kota", [(106.7900, -6.2200), (106.8100, -6.2000), (106.8600, -6.2000)]),
]
WATER = [(106.8300, -6.1650), (106.8500, -6.1650), (106.8500, -6.1550), (106.8300, -6.1550)]


def tile(z, tx, ty):
    ring = [(0, 0), (EXTENT, 0), (EXTENT, EXTENT), (0, EXTENT), (0, 0)]
    earth = layer("earth", [(3, ring[:-1], {"kind": "earth"})])
    water = layer("water", [(3, [to_tile(lng, lat, z, tx, ty) for lng, lat in WATER], {"kind": "water"})])
    roads = layer("roads", [
        (2, [to_tile(lng, lat, z, tx, ty) for lng, lat in points], {"kind": kind, "name": name})
        for kind, name, points in ROADS
    ])
    return earth + water + roads


def main(out):
    tiles = []
    for z in ZOOMS:
        x0, y0 = tile_xy(BBOX[0], BBOX[3], z)
        x1, y1 = tile_xy(BBOX[2], BBOX[1], z)
        for tx in range(int(x0), int(x1) + 1):
            for ty in range(int(y0), int(y1) + 1):
                tiles.append((zxy_to_tileid(z, tx, ty), z, tx, ty))
    tiles.sort()
    with open(out, "wb") as f:
        writer = Writer(f)
        for tileid, z, tx, ty in tiles:
            writer.write_tile(tileid, gzip.compress(tile(z, tx, ty), mtime=0))
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(BBOX[0] * 1e7),
                "min_lat_e7": int(BBOX[1] * 1e7),
                "max_lon_e7": int(BBOX[2] * 1e7),
                "max_lat_e7": int(BBOX[3] * 1e7),
                "center_zoom": 13,
                "center_lon_e7": int(106.8272 * 1e7),
                "center_lat_e7": int(-6.1754 * 1e7),
            },
            {
                "name": "KREKI test basemap (central Jakarta)",
                "attribution": "KREKI test data",
                "vector_layers": [
                    {"id": "earth", "fields": {"kind": "String"}},
                    {"id": "water", "fields": {"kind": "String"}},
                    {"id": "roads", "fields": {"kind": "String", "name": "String"}},
                ],
            },
        )
    print(f"{out}: {len(tiles)} tiles")


if __name__ == "__main__":
    main(sys.argv[1])
