// The rating page of a pavdit human-evaluation study (MM-Diffusion's protocol, Table 4).
//
// Reads the public study config embedded in index.html (#study-config: study_id, order_seed,
// items [{id, src}], criteria [{key, label, name, question}], scale [{value, label}], format),
// shows the items one at a time in an order seeded by the rater id and the study seed, collects
// three scores per item and submits them: POST to the study server ("submit", relative to the
// page) when served over http(s), else (page opened as a file, or the server unreachable) as a
// JSON download. Submission format: pavdit/evaluation/human_study/submissions.py.
// Progress is kept in localStorage per study and rater, so a reload resumes where it stopped.
'use strict';

(function () {
  const config = JSON.parse(document.getElementById('study-config').textContent);
  const byId = (id) => document.getElementById(id);
  const served = location.protocol === 'http:' || location.protocol === 'https:';
  const items = new Map(config.items.map((item) => [item.id, item]));
  let state = null;  // {rater, order, index, started_at, ratings: {item: {aq, vq, av, rated_at}}}

  // FNV-1a (32 bit) over the UTF-8 bytes: a stable seed from a string.
  function hashString(text) {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) {
      hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    }
    return hash;
  }

  // mulberry32: a small seeded PRNG, uniform in [0, 1).
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  // Each rater's own order (Fisher-Yates), the same every time that rater id starts this study.
  function orderFor(rater) {
    const random = mulberry32(hashString(config.order_seed + ':' + rater));
    const order = config.items.map((item) => item.id);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  const storageKey = (rater) => 'pavdit-human-eval:' + config.study_id + ':' + rater;

  function save() {
    try {
      localStorage.setItem(storageKey(state.rater), JSON.stringify(state));
    } catch (error) {
      // Storage can be off (private mode, some file:// setups): the study still works.
    }
  }

  function restore(rater) {
    try {
      const saved = JSON.parse(localStorage.getItem(storageKey(rater)) || 'null');
      if (saved && Array.isArray(saved.order) && saved.order.length === items.size &&
          saved.order.every((id) => items.has(id))) {
        return saved;
      }
    } catch (error) {
      // Unreadable or no storage: start afresh.
    }
    return null;
  }

  function show(screen) {
    for (const id of ['start-screen', 'rating-screen', 'done-screen']) {
      byId(id).hidden = id !== screen;
    }
  }

  function buildScales() {
    const container = byId('scales');
    for (const criterion of config.criteria) {
      const fieldset = document.createElement('fieldset');
      fieldset.className = 'scale';
      const legend = document.createElement('legend');
      legend.textContent = criterion.label + ': ' + criterion.name;
      const question = document.createElement('p');
      question.className = 'question';
      question.textContent = criterion.question;
      fieldset.append(legend, question);
      const options = document.createElement('div');
      options.className = 'options';
      for (const point of config.scale) {
        const id = criterion.key + '-' + point.value;
        const input = document.createElement('input');
        Object.assign(input, {type: 'radio', name: criterion.key, value: point.value, id: id});
        input.addEventListener('change', () => record(criterion.key, point.value));
        const label = document.createElement('label');
        label.htmlFor = id;
        label.append(input, ' ' + point.value + ' ' + point.label);
        options.append(label);
      }
      fieldset.append(options);
      container.append(fieldset);
    }
  }

  const currentItem = () => state.order[state.index];
  const missingCriteria = (rating) =>
    config.criteria.filter((c) => !(rating && rating[c.key])).map((c) => c.label);

  function record(key, value) {
    const rating = state.ratings[currentItem()] || (state.ratings[currentItem()] = {});
    rating[key] = value;
    if (missingCriteria(rating).length === 0) {
      rating.rated_at = new Date().toISOString();
    }
    byId('rating-message').textContent = '';
    save();
  }

  function render() {
    const id = currentItem();
    const total = state.order.length;
    byId('progress').textContent = (state.index + 1) + ' / ' + total;
    byId('item-id').textContent = id;
    const player = byId('player');
    player.src = items.get(id).src;
    player.load();
    const rating = state.ratings[id] || {};
    for (const input of byId('rating-form').querySelectorAll('input[type=radio]')) {
      input.checked = rating[input.name] === Number(input.value);
    }
    byId('prev-button').disabled = state.index === 0;
    byId('next-button').textContent = state.index === total - 1 ? 'Finish' : 'Next';
    byId('rating-message').textContent = '';
    show('rating-screen');
  }

  function next() {
    const missing = missingCriteria(state.ratings[currentItem()]);
    if (missing.length) {
      byId('rating-message').textContent = 'Please rate ' + missing.join(', ') +
        ' before moving on.';
      return;
    }
    if (state.index < state.order.length - 1) {
      state.index += 1;
      save();
      render();
    } else {
      finish();
    }
  }

  function previous() {
    if (state.index > 0) {
      state.index -= 1;
      save();
      render();
    }
  }

  function submission() {
    return {
      format: config.format,
      study_id: config.study_id,
      rater_id: state.rater,
      started_at: state.started_at,
      finished_at: new Date().toISOString(),
      order: state.order,
      user_agent: navigator.userAgent,
      ratings: state.order.map((id) => {
        const r = state.ratings[id];
        return {item: id, aq: r.aq, vq: r.vq, av: r.av, rated_at: r.rated_at};
      }),
    };
  }

  function download(data) {
    const name = 'ratings_' + config.study_id + '_' +
      state.rater.replace(/[^A-Za-z0-9_-]+/g, '-') + '_' +
      data.finished_at.replace(/[:.]/g, '-') + '.json';
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 1)],
      {type: 'application/json'}));
    const link = document.createElement('a');
    Object.assign(link, {href: url, download: name});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return name;
  }

  function showError(text) {
    const box = byId('submit-error');
    box.textContent = text;
    box.hidden = false;
    byId('retry-button').hidden = !served;
  }

  async function send(data) {
    byId('done-message').textContent = 'Sending your ratings...';
    byId('submit-error').hidden = true;
    byId('retry-button').hidden = true;
    let response;
    try {
      response = await fetch('submit', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify(data),
      });
    } catch (error) {
      byId('done-message').textContent = 'Your ratings were not saved.';
      showError('The study server cannot be reached (' + error.message + '). Use "Download my ' +
        'ratings" and send the file to the researcher.');
      return;
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (response.ok && answer && answer.ok) {
      byId('done-message').textContent = 'Your ratings are saved (' + answer.saved + '). ' +
        'You can close this page.';
      byId('back-button').hidden = true;
      try {
        localStorage.removeItem(storageKey(state.rater));
      } catch (error) {
        // Nothing stored to clear.
      }
      return;
    }
    byId('done-message').textContent = 'Your ratings were not saved.';
    showError('The server did not accept the ratings: ' +
      (answer && answer.error ? answer.error : 'HTTP ' + response.status) + '.');
  }

  function finish() {
    const data = submission();
    state.pending = data;
    show('done-screen');
    byId('back-button').hidden = false;
    if (served) {
      send(data);
    } else {
      const name = download(data);
      byId('done-message').textContent = 'This page was opened as a file, so your ratings ' +
        'were downloaded as ' + name + '. Please send that file to the researcher.';
    }
  }

  function start(event) {
    event.preventDefault();
    const rater = byId('rater-id').value.trim();
    if (!rater) {
      byId('rater-id').focus();
      return;
    }
    state = restore(rater) || {rater: rater, order: orderFor(rater), index: 0,
                               started_at: new Date().toISOString(), ratings: {}};
    save();
    render();
  }

  function init() {
    document.title = config.title;
    buildScales();
    byId('start-form').addEventListener('submit', start);
    byId('next-button').addEventListener('click', next);
    byId('prev-button').addEventListener('click', previous);
    byId('retry-button').addEventListener('click', () => send(state.pending));
    byId('download-button').addEventListener('click', () => download(state.pending));
    byId('back-button').addEventListener('click', () => render());
    if (!served) {
      byId('start-note').textContent = 'Opened as a file: at the end your ratings are ' +
        'downloaded as a JSON file to send to the researcher.';
      byId('start-note').hidden = false;
    }
  }

  init();
}());
