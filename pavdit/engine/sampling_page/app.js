// The sampling page of tools/serve.py (routes: pavdit/engine/sampling_server.py).
//
// Reads the model's description (GET api/model) to offer a prompt field or a class list and the
// default steps and guidance, sends one request per Generate (POST api/generate, JSON), polls
// api/status for the sampler's progress meanwhile, then plays the clip and shows its preview.
// The inputs are checked by the server only, so the page shows its message as it is.
'use strict';

(function () {
  const byId = (id) => document.getElementById(id);
  let model = null;  // the api/model answer
  let polling = null;

  // The JSON answer of an ok response; else an Error whose message says what went wrong.
  async function call(url, options) {
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new Error('The sampling server cannot be reached (' + error.message + '); is ' +
        'tools/serve.py still running?');
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (!response.ok || !answer || !answer.ok) {
      throw new Error(answer && answer.error ? answer.error : 'HTTP ' + response.status);
    }
    return answer;
  }

  // A number when the field holds one, else the text as typed (the server says what is wrong).
  function fieldValue(id) {
    const text = byId(id).value.trim();
    return text !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
  }

  function describe(info) {
    model = info;
    const kinds = {text: 'text-conditioned', class: 'class-conditioned', none: 'unconditional'};
    byId('model-info').textContent = info.model + ': ' + kinds[info.conditioning] + ', ' +
      info.clip_seconds + ' s clips (' + info.frames + ' frames at ' + info.fps + ' fps, ' +
      info.size.join(' x ') + ' pixels, ' + info.sample_rate + ' Hz), sampled on ' +
      info.device + '.';
    byId('prompt-field').hidden = info.conditioning !== 'text';
    byId('label-field').hidden = info.conditioning !== 'class';
    info.classes.forEach((name, index) => {
      const option = document.createElement('option');
      Object.assign(option, {value: index, textContent: index + ': ' + name});
      byId('label').append(option);
    });
    byId('steps').value = info.default_steps;
    byId('guidance').value = info.default_guidance;
    byId('generate-button').disabled = false;
  }

  function request() {
    const body = {steps: fieldValue('steps'), guidance: fieldValue('guidance'),
                  seed: fieldValue('seed')};
    if (model.conditioning === 'text') {
      body.prompt = byId('prompt').value;
    } else if (model.conditioning === 'class') {
      body.label = Number(byId('label').value);
    }
    return body;
  }

  async function poll() {
    let status;
    try {
      status = await call('api/status');
    } catch (error) {
      return;  // a missed poll only delays the indicator
    }
    if (!status.busy || !status.steps) {
      return;
    }
    const progress = byId('progress');
    progress.max = status.steps;
    progress.value = status.step;
    byId('progress-text').textContent = (status.step < status.steps
      ? 'step ' + status.step + ' / ' + status.steps : 'writing the video and its sound') +
      ', ' + status.elapsed.toFixed(1) + ' s';
  }

  function setBusy(busy) {
    const button = byId('generate-button');
    button.disabled = busy;
    button.textContent = busy ? 'Generating...' : 'Generate';
    document.body.classList.toggle('busy', busy);
    byId('progress').hidden = !busy;
    byId('progress').removeAttribute('value');  // indeterminate until the first poll
    byId('progress-text').textContent = busy ? 'starting' : '';
    clearInterval(polling);
    polling = busy ? setInterval(poll, 300) : null;
  }

  function show(answer) {
    const player = byId('player');
    player.src = answer.video;
    player.load();
    byId('preview').src = answer.preview;
    byId('video-link').href = answer.video;
    byId('preview-link').href = answer.preview;
    const condition = 'prompt' in answer ? '"' + answer.prompt + '"'
      : 'label' in answer ? 'class ' + answer.label + ' (' + answer.class_name + ')'
        : 'unconditional';
    byId('caption').textContent = answer.video.split('/').pop() + ': ' + condition + ', seed ' +
      answer.seed + ', ' + answer.steps + ' steps, guidance ' + answer.guidance +
      '; generated in ' + answer.seconds.toFixed(1) + ' s.';
    byId('result').hidden = false;
  }

  async function generate(event) {
    event.preventDefault();
    byId('message').textContent = '';
    setBusy(true);
    try {
      show(await call('api/generate', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify(request()),
      }));
    } catch (error) {
      byId('message').textContent = error.message;
    } finally {
      setBusy(false);
    }
  }

  async function init() {
    byId('generate-form').addEventListener('submit', generate);
    byId('random-seed').addEventListener('click', () => {
      byId('seed').value = Math.floor(Math.random() * 2 ** 31);
    });
    try {
      describe(await call('api/model'));
    } catch (error) {
      byId('model-info').textContent = '';
      byId('message').textContent = 'Cannot read the model description: ' + error.message;
    }
  }

  init();
}());
