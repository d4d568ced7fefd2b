// som serve's page: mark an image, inspect its marks, ask a model about it.
// Plain JavaScript, no build step, nothing loaded from elsewhere. All URLs are
// relative, so the page also works when the router is mounted under a prefix.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // What the page knows; also readable as `window.som` (handy in a console,
  // and how the browser test watches the page).
  const state = {
    health: null,
    file: null,        // the image being marked (a File)
    doc: null,         // the marks JSON of /api/mark, parsed
    marksText: "",     // ... and as the server wrote it, for the download
    masks: [],         // per mark: {x, y, w, h, bits} over the region's box
    hitMap: null,      // per pixel: index of the smallest mark's region there, or -1
    hovered: -1,       // index into doc.marks
    selected: new Set(),
    answer: null,      // the answer JSON of /api/ask
    answerMarks: new Set(),
    busy: false,
    ready: false,      // a marked image is shown
    error: "",
  };
  window.som = state;

  const COLORS = {
    answer: [0, 200, 83],
    selected: [0, 145, 255],
    hovered: [255, 196, 0],
  };
  // Opacity of the black veil over everything but the hovered region.
  const VEIL = 120;

  // ---- Server information -------------------------------------------------

  async function loadHealth() {
    try {
      const res = await fetch("api/health");
      const h = await res.json();
      state.health = h;
      const seg = $("segmenter");
      seg.innerHTML = "";
      for (const s of h.segmenters) {
        const o = document.createElement("option");
        o.value = s.name;
        o.textContent = s.name + (s.one_at_a_time ? " (one at a time)" : "");
        o.selected = s.name === h.default_segmenter;
        seg.append(o);
      }
      const task = $("task");
      task.innerHTML = "";
      for (const t of h.tasks) {
        const o = document.createElement("option");
        o.value = o.textContent = t;
        task.append(o);
      }
      setStyle(h.style);
      const p = h.provider;
      $("server").textContent = p.available ? `model: ${p.name} ${p.model}` : "no model: marking only";
      $("ask-note").textContent = p.available ? "" : p.reason;
    } catch (e) {
      showError("cannot reach the server: " + e);
    }
    updateButtons();
  }

  function setStyle(style) {
    $("labels").value = style.labels;
    $("zero_based").checked = style.zero_based;
    const draw = style.draw.split(",");
    for (const box of $("draw").querySelectorAll("input")) box.checked = draw.includes(box.value);
    $("alpha").value = style.alpha;
    $("alpha-value").textContent = Number(style.alpha).toFixed(2);
    $("font_size").value = style.font_size == null ? "" : style.font_size;
    $("allocation").value = style.allocation;
  }

  // ---- Building requests --------------------------------------------------

  function form() {
    const f = new FormData();
    f.append("image", state.file, state.file.name);
    f.append("segmenter", $("segmenter").value);
    f.append("labels", $("labels").value);
    f.append("zero_based", $("zero_based").checked ? "true" : "false");
    const draw = [...$("draw").querySelectorAll("input:checked")].map((b) => b.value);
    f.append("draw", draw.length ? draw.join(",") : "none");
    f.append("alpha", $("alpha").value);
    f.append("font_size", $("font_size").value.trim() || "auto");
    f.append("allocation", $("allocation").value);
    return f;
  }

  async function post(path, body) {
    const res = await fetch(path, { method: "POST", body });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        message = (await res.json()).error || message;
      } catch (_) { /* not JSON */ }
      if (res.status === 503 && res.headers.get("Retry-After")) {
        message += ` (retry in ${res.headers.get("Retry-After")} s)`;
      }
      throw new Error(message);
    }
    return res;
  }

  // ---- Progress -----------------------------------------------------------

  let timer = null;
  function startProgress(text) {
    state.busy = true;
    updateButtons();
    const start = performance.now();
    const tick = () => {
      $("progress-text").textContent = `${text} ${((performance.now() - start) / 1000).toFixed(1)} s`;
    };
    tick();
    $("progress").hidden = false;
    timer = setInterval(tick, 100);
  }

  function stopProgress() {
    clearInterval(timer);
    $("progress").hidden = true;
    state.busy = false;
    updateButtons();
  }

  function showError(message) {
    state.error = message;
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function updateButtons() {
    const p = state.health && state.health.provider;
    $("mark").disabled = state.busy || !state.file;
    $("ask").disabled = state.busy || !state.ready || !(p && p.available);
  }

  // ---- Marking ------------------------------------------------------------

  async function mark() {
    if (!state.file || state.busy) return;
    showError("");
    state.ready = false;
    startProgress(`Segmenting ${state.file.name} with ${$("segmenter").value}…`);
    try {
      // The JSON first, then the PNG: the server keeps the marked image, so
      // the second request does not segment again.
      const text = await (await post("api/mark", form())).text();
      const png = await (await post("api/mark.png", form())).blob();
      state.doc = JSON.parse(text);
      state.marksText = text;
      state.selected.clear();
      state.answer = null;
      state.answerMarks.clear();
      state.hovered = -1;
      buildMasks();
      await showImage(png);
      state.ready = true;
      renderAnswer();
      renderSelection();
      showDetails();
    } catch (e) {
      showError(String(e.message || e));
    } finally {
      stopProgress();
    }
  }

  function showImage(png) {
    return new Promise((resolve, reject) => {
      const img = $("marked");
      const old = img.src;
      img.onload = () => {
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        const canvas = $("overlay");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        $("stage").classList.remove("empty");
        fit();
        draw();
        resolve();
      };
      img.onerror = () => reject(new Error("the marked image cannot be shown"));
      img.src = URL.createObjectURL(png);
      const stem = state.file.name.replace(/\.[^.]*$/, "") || "image";
      const a = $("download-png");
      a.href = img.src;
      a.download = `${stem}.marked.png`;
      const j = $("download-json");
      if (j.href.startsWith("blob:")) URL.revokeObjectURL(j.href);
      j.href = URL.createObjectURL(new Blob([state.marksText], { type: "application/json" }));
      j.download = `${stem}.marks.json`;
      $("downloads").hidden = false;
    });
  }

  // Shows the image as large as the view allows (small images up to twice
  // their size), the highlight layer exactly over it.
  function fit() {
    const img = $("marked");
    if (!img.naturalWidth) return;
    const view = $("view");
    const room = view.clientWidth - 40;
    const scale = Math.min(room / img.naturalWidth, (window.innerHeight * 0.66) / img.naturalHeight, 2);
    img.style.width = `${Math.floor(img.naturalWidth * scale)}px`;
  }

  // COCO compressed RLE (pycocotools' rleFrString): the run lengths of a
  // column-major mask, zeros first.
  function rleCounts(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = true;
      while (more) {
        const c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = (c & 0x20) !== 0;
        p++;
        k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  function maskOf(region) {
    const [bx, by, bw, bh] = region.bbox;
    const bits = new Uint8Array(Math.max(bw * bh, 0));
    const seg = region.segmentation;
    if (!seg || typeof seg.counts !== "string") {
      bits.fill(1); // a box-only region
      return { x: bx, y: by, w: bw, h: bh, bits };
    }
    const h = seg.size[0];
    let i = 0, on = false;
    for (const run of rleCounts(seg.counts)) {
      if (on) {
        for (let j = i; j < i + run; j++) {
          const x = Math.floor(j / h) - bx, y = (j % h) - by;
          if (x >= 0 && y >= 0 && x < bw && y < bh) bits[y * bw + x] = 1;
        }
      }
      i += run;
      on = !on;
    }
    return { x: bx, y: by, w: bw, h: bh, bits };
  }

  function buildMasks() {
    const { width, height } = state.doc.image;
    state.masks = state.doc.marks.map((m) => maskOf(m.region));
    // Larger regions first, so a small region inside a large one stays
    // reachable under the pointer.
    const order = state.masks.map((_, i) => i);
    order.sort((a, b) => state.doc.marks[b].region.area - state.doc.marks[a].region.area);
    const map = new Int32Array(width * height).fill(-1);
    for (const i of order) {
      const m = state.masks[i];
      for (let y = 0; y < m.h; y++) {
        for (let x = 0; x < m.w; x++) {
          if (m.bits[y * m.w + x]) map[(m.y + y) * width + m.x + x] = i;
        }
      }
    }
    state.hitMap = map;
  }

  // ---- Highlighting -------------------------------------------------------

  // Colours a region into the highlight layer: `fill` opacity inside, opaque
  // along its edge (two pixels wide).
  function paint(data, width, m, [r, g, b], fill) {
    const on = (x, y) => x >= 0 && y >= 0 && x < m.w && y < m.h && m.bits[y * m.w + x] === 1;
    for (let y = 0; y < m.h; y++) {
      for (let x = 0; x < m.w; x++) {
        if (!on(x, y)) continue;
        let edge = false;
        for (let d = 1; d <= 2 && !edge; d++) {
          edge = !on(x - d, y) || !on(x + d, y) || !on(x, y - d) || !on(x, y + d);
        }
        const o = ((m.y + y) * width + m.x + x) * 4;
        data[o] = r;
        data[o + 1] = g;
        data[o + 2] = b;
        data[o + 3] = edge ? 255 : fill;
      }
    }
  }

  // The highlight layer: the answer's marks, the selected ones, and the
  // hovered one, with the rest of the image veiled so its region stands out.
  function draw() {
    const canvas = $("overlay");
    const ctx = canvas.getContext("2d");
    if (!state.doc) {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      return;
    }
    const { width, height } = state.doc.image;
    const img = ctx.createImageData(width, height);
    if (state.hovered >= 0) {
      for (let o = 3; o < img.data.length; o += 4) img.data[o] = VEIL;
    }
    for (const i of state.answerMarks) paint(img.data, width, state.masks[i], COLORS.answer, 120);
    for (const i of state.selected) paint(img.data, width, state.masks[i], COLORS.selected, 110);
    if (state.hovered >= 0) paint(img.data, width, state.masks[state.hovered], COLORS.hovered, 60);
    ctx.putImageData(img, 0, 0);
    if (state.hovered >= 0) {
      const [x, y, w, h] = state.doc.marks[state.hovered].region.bbox;
      ctx.strokeStyle = "rgb(255, 196, 0)";
      ctx.lineWidth = Math.max(1, Math.round(width / 400));
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
    }
  }

  // The mark under a point of the image: its label first, then the smallest
  // region there.
  function markAt(px, py) {
    const marks = state.doc.marks;
    for (let i = 0; i < marks.length; i++) {
      const [x, y, w, h] = marks[i].label_box;
      if (px >= x && py >= y && px < x + w && py < y + h) return i;
    }
    const { width, height } = state.doc.image;
    if (px < 0 || py < 0 || px >= width || py >= height) return -1;
    return state.hitMap[py * width + px];
  }

  function eventPoint(e) {
    const canvas = $("overlay");
    const rect = canvas.getBoundingClientRect();
    return [
      Math.floor(((e.clientX - rect.left) * canvas.width) / rect.width),
      Math.floor(((e.clientY - rect.top) * canvas.height) / rect.height),
    ];
  }

  function describe(i) {
    const m = state.doc.marks[i];
    const r = m.region;
    const rows = [
      ["mark", m.text],
      ["region id", r.id],
      ["label", r.label == null ? "—" : r.label],
      ["score", r.score == null ? "—" : Number(r.score).toFixed(3)],
      ["area", `${r.area} px`],
      ["box", `[${r.bbox.join(", ")}]`],
      ["anchor", `(${m.x}, ${m.y}), ${m.placement}`],
    ];
    const dl = document.createElement("dl");
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = String(v);
      dd.dataset.field = k;
      dl.append(dt, dd);
    }
    return dl;
  }

  function showDetails() {
    const box = $("details");
    box.innerHTML = "";
    if (state.hovered >= 0) {
      box.dataset.mark = state.doc.marks[state.hovered].text;
      box.append(describe(state.hovered));
    } else {
      delete box.dataset.mark;
      const p = document.createElement("p");
      p.className = "note";
      p.textContent = state.doc
        ? `${state.doc.marks.length} marks. Hover a mark to see its region; click to select it.`
        : "Hover a mark to see its region; click to select it.";
      box.append(p);
    }
  }

  function chip(i, kind) {
    const m = state.doc.marks[i];
    const b = document.createElement("button");
    b.type = "button";
    b.className = `chip ${kind}`;
    b.textContent = `[${m.text}]`;
    b.title = `region ${m.region.id}, area ${m.region.area} px`;
    b.addEventListener("mouseenter", () => hover(i));
    b.addEventListener("mouseleave", () => hover(-1));
    if (kind === "selected") b.addEventListener("click", () => toggle(i));
    return b;
  }

  function renderSelection() {
    const box = $("selection");
    box.innerHTML = "";
    if (!state.selected.size) return;
    const label = document.createElement("span");
    label.textContent = "Selected: ";
    box.append(label);
    for (const i of [...state.selected].sort((a, b) => a - b)) box.append(chip(i, "selected"));
    const texts = [...state.selected].sort((a, b) => a - b).map((i) => `[${state.doc.marks[i].text}]`);
    const copy = document.createElement("code");
    copy.textContent = texts.join("");
    box.append(copy);
  }

  function renderAnswer() {
    const box = $("answer");
    box.innerHTML = "";
    const a = state.answer;
    box.hidden = !a;
    if (!a) return;
    const text = document.createElement("p");
    text.className = "answer-text";
    text.textContent = a.text;
    box.append(text);
    const line = document.createElement("p");
    line.append("Marks in the answer: ");
    if (!state.answerMarks.size) line.append("none");
    for (const i of [...state.answerMarks].sort((x, y) => x - y)) line.append(chip(i, "answer"));
    if (a.unknown && a.unknown.length) line.append(` · not on the image: ${a.unknown.join(", ")}`);
    box.append(line);
    if (a.usage) {
      const u = document.createElement("p");
      u.className = "note";
      u.textContent = `${a.answered_by || a.model} · ${a.usage.input_tokens} tokens in, ${a.usage.output_tokens} out`;
      box.append(u);
    }
  }

  function hover(i) {
    if (i === state.hovered) return;
    state.hovered = i;
    draw();
    showDetails();
  }

  function toggle(i) {
    if (state.selected.has(i)) state.selected.delete(i);
    else state.selected.add(i);
    draw();
    renderSelection();
  }

  // ---- Asking -------------------------------------------------------------

  async function ask() {
    const prompt = $("prompt").value.trim();
    if (!prompt) {
      showError("write a prompt first");
      return;
    }
    showError("");
    const p = state.health.provider;
    startProgress(`Asking ${p.name} ${p.model}…`);
    try {
      const f = form();
      f.append("prompt", prompt);
      f.append("task", $("task").value);
      const answer = await (await post("api/ask", f)).json();
      state.answer = answer;
      state.answerMarks = new Set(
        answer.marks
          .map((m) => state.doc.marks.findIndex((d) => d.id === m.id))
          .filter((i) => i >= 0),
      );
      renderAnswer();
      draw();
    } catch (e) {
      showError(String(e.message || e));
    } finally {
      stopProgress();
    }
  }

  // ---- Wiring -------------------------------------------------------------

  function useFile(file) {
    if (!file) return;
    state.file = file;
    mark();
  }

  window.addEventListener("resize", fit);
  $("file").addEventListener("change", (e) => useFile(e.target.files[0]));
  for (const target of [$("drop"), $("stage")]) {
    target.addEventListener("dragover", (e) => {
      e.preventDefault();
      target.classList.add("dragging");
    });
    target.addEventListener("dragleave", () => target.classList.remove("dragging"));
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      target.classList.remove("dragging");
      useFile(e.dataTransfer.files[0]);
    });
  }
  for (const b of $("photos").querySelectorAll("button")) {
    b.addEventListener("click", async () => {
      const name = b.dataset.photo;
      const blob = await (await fetch(`photos/${name}`)).blob();
      useFile(new File([blob], name, { type: "image/jpeg" }));
    });
  }
  $("options").addEventListener("submit", (e) => {
    e.preventDefault();
    mark();
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ask();
  });
  $("alpha").addEventListener("input", () => {
    $("alpha-value").textContent = Number($("alpha").value).toFixed(2);
  });
  const overlay = $("overlay");
  overlay.addEventListener("mousemove", (e) => {
    if (!state.ready) return;
    const [x, y] = eventPoint(e);
    hover(markAt(x, y));
  });
  overlay.addEventListener("mouseleave", () => hover(-1));
  overlay.addEventListener("click", (e) => {
    if (!state.ready) return;
    const [x, y] = eventPoint(e);
    const i = markAt(x, y);
    if (i >= 0) toggle(i);
  });

  loadHealth();
})();
