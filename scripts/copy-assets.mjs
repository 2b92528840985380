// Copies browser assets out of node_modules into player/static/vendor (run by `npm ci`).
import { copyFileSync, mkdirSync } from "node:fs";

const assets = [
  ["node_modules/hls.js/dist/hls.min.js", "hls.min.js"],
  // tus-js-client's UMD browser bundle: defines window.tus for the upload page.
  ["node_modules/tus-js-client/dist/tus.min.js", "tus.min.js"],
  // Plyr: the watch page's controls (UMD bundle defining window.Plyr), its stylesheet and icon sprite.
  ["node_modules/plyr/dist/plyr.min.js", "plyr.min.js"],
  ["node_modules/plyr/dist/plyr.css", "plyr.css"],
  ["node_modules/plyr/dist/plyr.svg", "plyr.svg"],
  // uPlot (window.uPlot) and its stylesheet: the operator dashboard's history charts.
  ["node_modules/uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["node_modules/uplot/dist/uPlot.min.css", "uPlot.min.css"],
];
mkdirSync("player/static/vendor", { recursive: true });
for (const [from, name] of assets) copyFileSync(from, `player/static/vendor/${name}`);
console.log(`copied ${assets.map(([, name]) => name).join(", ")} into player/static/vendor`);
