// Copies browser assets out of node_modules into player/static/vendor (run by `npm ci`).
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("player/static/vendor", { recursive: true });
copyFileSync("node_modules/hls.js/dist/hls.min.js", "player/static/vendor/hls.min.js");
console.log("copied hls.js into player/static/vendor");
