// segkit's web page: segments an image (or the camera) with onnxruntime-web and draws the overlay and a legend.
//
// segkit.json (written by `segkit export --format web`) names the model, where onnxruntime-web comes from and the
// model's metadata: classes, palette, input size, mean/std, input kind (float NCHW or uint8 NHWC) and output kind
// (logits or labels). An image goes to the model as segkit's fixed-input protocol has it: resized (longer side)
// and padded with the mean pixel to the input size; the label map of the content is drawn over the image.
//
// Query parameters: ?ep=wasm|webgpu (default: WebGPU when the browser has it and the model is float, else WASM),
// ?threads=N (WASM threads; they need cross-origin isolation, i.e. the server sends
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp, else one thread).
//
// Automation (tests, benchmarks): window.segkit.ready resolves to info(); window.segkit.segmentUrl(url) resolves to
// {height, width, extent: [h, w], labels: [row-major label map at the input size], ms}; window.segkit.benchmark(runs,
// warmup) resolves to {ms: [session.run times]}.

const $ = (id) => document.getElementById(id);
const state = { session: null, ep: "wasm", threads: 1, cfg: null, ort: null, camera: null };

async function loadRuntime(cfg, params) {
  const ort = await import(new URL(cfg.runtime.script, location.href).href);
  ort.env.wasm.wasmPaths = new URL(cfg.runtime.wasm_paths, location.href).href;
  const isolated = self.crossOriginIsolated === true;
  const asked = parseInt(params.get("threads") || "0", 10);
  const wanted = asked > 0 ? asked : Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
  state.threads = isolated ? wanted : 1; // SharedArrayBuffer (threads) exists only with cross-origin isolation
  ort.env.wasm.numThreads = state.threads;
  return ort;
}

async function pickProvider(cfg, params) {
  const asked = params.get("ep");
  const float = cfg.model.precision !== "int8";
  let gpu = false;
  if (float && navigator.gpu && asked !== "wasm") {
    try {
      gpu = (await navigator.gpu.requestAdapter()) !== null;
    } catch (e) {
      gpu = false;
    }
  }
  if (asked === "webgpu" && !gpu) console.warn("segkit: WebGPU is not available here (or the model is int8); using WASM");
  return gpu && asked !== "wasm" ? "webgpu" : "wasm";
}

async function init() {
  const params = new URLSearchParams(location.search);
  const cfg = await (await fetch("segkit.json", { cache: "no-store" })).json();
  state.cfg = cfg;
  const ort = await loadRuntime(cfg, params);
  state.ort = ort;
  state.ep = await pickProvider(cfg, params);
  const options = { executionProviders: [state.ep], graphOptimizationLevel: "all" };
  try {
    state.session = await ort.InferenceSession.create(cfg.model.file, options);
  } catch (e) {
    if (state.ep === "wasm") throw e;
    console.warn(`segkit: ${state.ep} failed (${e}); using WASM`);
    state.ep = "wasm";
    state.session = await ort.InferenceSession.create(cfg.model.file, { ...options, executionProviders: ["wasm"] });
  }
  const m = cfg.metadata;
  $("status").textContent =
    `${m.config_name || "model"} (${cfg.model.precision}, ${m.input_size[0]}x${m.input_size[1]}, ` +
    `${m.class_names.length} classes) on ${describe()}; onnxruntime-web ${cfg.runtime.version} (${cfg.runtime.source})`;
  return info();
}

function describe() {
  if (state.ep !== "wasm") return state.ep;
  const why = self.crossOriginIsolated ? "" : ", no cross-origin isolation";
  return `WASM, ${state.threads} thread${state.threads > 1 ? "s" : ""}${why}`;
}

function info() {
  return {
    ep: state.ep,
    threads: state.threads,
    isolated: self.crossOriginIsolated === true,
    precision: state.cfg.model.precision,
    inputSize: state.cfg.metadata.input_size,
    runtime: state.cfg.runtime,
  };
}

// An image source (ImageBitmap, video) -> the model's input pixels: {pixels RGBA, extent [h, w]} at the input size.
function fit(source, width, height) {
  const [H, W] = state.cfg.metadata.input_size;
  const scale = Math.min(H / height, W / width);
  const nh = Math.max(1, Math.min(H, Math.floor(height * scale + 0.5)));
  const nw = Math.max(1, Math.min(W, Math.floor(width * scale + 0.5)));
  const canvas = new OffscreenCanvas(W, H);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const mean = state.cfg.metadata.mean.map((v) => Math.round(v));
  ctx.fillStyle = `rgb(${mean[0]}, ${mean[1]}, ${mean[2]})`;
  ctx.fillRect(0, 0, W, H);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, nw, nh);
  return { pixels: ctx.getImageData(0, 0, W, H).data, extent: [nh, nw] };
}

function toTensor(pixels) {
  const m = state.cfg.metadata;
  const [H, W] = m.input_size;
  const n = H * W;
  if (m.input === "uint8") {
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) data[3 * i + c] = pixels[4 * i + c];
    return new state.ort.Tensor("uint8", data, [1, H, W, 3]);
  }
  const data = new Float32Array(n * 3);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(m.mean[c]);
    const std = Math.fround(m.std[c]);
    for (let i = 0; i < n; i++) data[c * n + i] = Math.fround(pixels[4 * i + c] - mean) / std;
  }
  return new state.ort.Tensor("float32", data, [1, 3, H, W]);
}

function toLabels(output) {
  const [H, W] = state.cfg.metadata.input_size;
  const n = H * W;
  if (state.cfg.metadata.output === "labels") return Uint8Array.from(output.data.subarray(0, n));
  const logits = output.data;
  const classes = output.dims[1];
  const labels = new Uint8Array(n);
  const best = Float32Array.from(logits.subarray(0, n));
  for (let c = 1; c < classes; c++) {
    const row = logits.subarray(c * n, (c + 1) * n);
    for (let i = 0; i < n; i++) {
      if (row[i] > best[i]) {
        best[i] = row[i];
        labels[i] = c;
      }
    }
  }
  return labels;
}

async function run(tensor) {
  const feeds = { [state.session.inputNames[0]]: tensor };
  const t0 = performance.now();
  const result = await state.session.run(feeds);
  const ms = performance.now() - t0;
  return { output: result[state.session.outputNames[0]], ms };
}

async function segment(source, width, height) {
  const t0 = performance.now();
  const { pixels, extent } = fit(source, width, height);
  const { output, ms } = await run(toTensor(pixels));
  const labels = toLabels(output);
  return { labels, extent, ms, total: performance.now() - t0 };
}

function draw(source, width, height, result) {
  const [H, W] = state.cfg.metadata.input_size;
  const [nh, nw] = result.extent;
  const side = Math.max(width, height);
  const scale = Math.min(720 / side, Math.max(1, 360 / side)); // small images shown at 360 px, large ones at 720
  const canvas = $("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  const palette = state.cfg.metadata.palette;
  const colours = new ImageData(nw, nh);
  const counts = new Map();
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      const label = result.labels[y * W + x];
      const rgb = palette[label] || [255, 255, 255];
      const o = 4 * (y * nw + x);
      colours.data[o] = rgb[0];
      colours.data[o + 1] = rgb[1];
      colours.data[o + 2] = rgb[2];
      colours.data[o + 3] = 255;
      counts.set(label, (counts.get(label) || 0) + 1);
    }
  }
  const layer = new OffscreenCanvas(nw, nh);
  layer.getContext("2d").putImageData(colours, 0, 0);
  ctx.globalAlpha = parseFloat($("alpha").value);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(layer, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  legend(counts, nh * nw);
  $("latency").textContent =
    `inference ${result.ms.toFixed(1)} ms, frame ${result.total.toFixed(1)} ms (${describe()}, input ${H}x${W})`;
}

function legend(counts, total) {
  const names = state.cfg.metadata.class_names;
  const palette = state.cfg.metadata.palette;
  const list = $("legend");
  list.replaceChildren();
  for (const [label, count] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const rgb = palette[label] || [255, 255, 255];
    swatch.style.background = `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
    item.append(swatch, `${names[label] || `class ${label}`} ${((100 * count) / total).toFixed(1)}%`);
    list.append(item);
  }
}

async function bitmapOf(blob) {
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

async function segmentImage(bitmap) {
  const result = await segment(bitmap, bitmap.width, bitmap.height);
  draw(bitmap, bitmap.width, bitmap.height, result);
  return result;
}

async function cameraLoop() {
  const video = $("video");
  if (state.camera) {
    state.camera.getTracks().forEach((t) => t.stop());
    state.camera = null;
    $("camera").textContent = "Camera";
    return;
  }
  state.camera = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  video.srcObject = state.camera;
  await video.play();
  $("camera").textContent = "Stop camera";
  while (state.camera) {
    const result = await segment(video, video.videoWidth, video.videoHeight);
    draw(video, video.videoWidth, video.videoHeight, result);
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}

const ready = init();
window.segkit = {
  ready,
  info,
  async segmentUrl(url) {
    await ready;
    const bitmap = await bitmapOf(await (await fetch(url)).blob());
    const result = await segmentImage(bitmap);
    const [H, W] = state.cfg.metadata.input_size;
    return { height: H, width: W, extent: result.extent, labels: Array.from(result.labels), ms: result.ms };
  },
  async benchmark(runs = 10, warmup = 2) {
    await ready;
    const [H, W] = state.cfg.metadata.input_size;
    const pixels = new Uint8ClampedArray(H * W * 4).map((_, i) => (i * 2654435761) % 251);
    const tensor = toTensor(pixels);
    const ms = [];
    for (let i = 0; i < warmup + runs; i++) {
      const { ms: t } = await run(tensor);
      if (i >= warmup) ms.push(t);
    }
    return { ms, ...info() };
  },
};
ready.catch((e) => {
  $("status").textContent = `error: ${e}`;
  window.segkitError = String(e);
});
$("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) await segmentImage(await bitmapOf(file));
});
$("camera").addEventListener("click", () =>
  cameraLoop().catch((e) => {
    $("status").textContent = `camera: ${e}`;
  }),
);
