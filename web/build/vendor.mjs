// Copies the front end's third-party files out of node_modules into web/vendor/, where `kreki`
// embeds them: Leaflet (the map), protomaps-leaflet and pmtiles (PMTiles basemaps), and the
// bundled offline basemap, derived from Natural Earth
// 1:10m countries (world-atlas) and cut to Indonesia and its neighbours.
//
// Run after changing a version in package.json: `npm ci && npm run vendor` (in web/). The output
// is committed so building `kreki` needs no Node; this script is how it is made, byte for byte.
import { readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { feature } from 'topojson-client';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const modules = join(web, 'node_modules');
const out = join(web, 'vendor');
mkdirSync(out, { recursive: true });

copyFileSync(join(modules, 'leaflet/dist/leaflet.js'), join(out, 'leaflet.js'));
copyFileSync(join(modules, 'leaflet/dist/leaflet.css'), join(out, 'leaflet.css'));
copyFileSync(join(modules, 'leaflet/LICENSE'), join(out, 'LICENSE.leaflet.txt'));
// Street maps without internet: a PMTiles basemap served by kreki, drawn by protomaps-leaflet
// (vector tiles, Canvas 2D, no GPU needed) or, for raster archives, pmtiles' Leaflet layer.
copyFileSync(join(modules, 'protomaps-leaflet/dist/protomaps-leaflet.js'), join(out, 'protomaps-leaflet.js'));
copyFileSync(join(modules, 'protomaps-leaflet/LICENSE'), join(out, 'LICENSE.protomaps-leaflet.txt'));
copyFileSync(join(modules, 'pmtiles/dist/pmtiles.js'), join(out, 'pmtiles.js'));
// The pmtiles package ships no licence file; its package.json names the licence.
const pmtilesPackage = JSON.parse(readFileSync(join(modules, 'pmtiles/package.json'), 'utf8'));
writeFileSync(join(out, 'LICENSE.pmtiles.txt'),
  `pmtiles ${pmtilesPackage.version}: ${pmtilesPackage.license} licence, copyright Protomaps LLC (${pmtilesPackage.homepage ?? 'PMTiles'}).\n`);

// The region the basemap covers, [minLng, minLat, maxLng, maxLat]: the archipelago with room around it.
const BBOX = [90, -15, 145, 10];
const atlas = JSON.parse(readFileSync(join(modules, 'world-atlas/countries-10m.json'), 'utf8'));
const countries = feature(atlas, atlas.objects.countries).features;

const round = (n) => Math.round(n * 1e4) / 1e4; // ~11 m: finer than 1:10m data can show
const ringTouches = (ring) => ring.some(([lng, lat]) =>
  lng >= BBOX[0] && lng <= BBOX[2] && lat >= BBOX[1] && lat <= BBOX[3]);
const polygons = (geometry) => geometry.type === 'Polygon' ? [geometry.coordinates]
  : geometry.type === 'MultiPolygon' ? geometry.coordinates : [];

const features = [];
for (const country of countries) {
  const kept = polygons(country.geometry)
    .filter((polygon) => ringTouches(polygon[0]))
    .map((polygon) => polygon.map((ring) => {
      const rounded = ring.map(([lng, lat]) => [round(lng), round(lat)]);
      return rounded.filter((point, i) => i === 0 || point[0] !== rounded[i - 1][0] || point[1] !== rounded[i - 1][1]);
    }));
  if (kept.length === 0) continue;
  features.push({
    type: 'Feature',
    properties: { name: country.properties.name, id: country.id ?? null },
    geometry: { type: 'MultiPolygon', coordinates: kept },
  });
}
const basemap = {
  type: 'FeatureCollection',
  attribution: 'Natural Earth (public domain), via world-atlas',
  bbox: BBOX,
  features,
};
writeFileSync(join(out, 'basemap.geojson'), JSON.stringify(basemap));
console.log(`vendor: leaflet + basemap with ${features.length} countries -> ${out}`);
