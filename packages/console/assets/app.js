// The dead-letter console page. Plain browser JavaScript, served as is: nothing is built at run time.
// Everything from the broker is inserted with textContent, never as HTML.

const csrf = document.querySelector('meta[name="wharf-csrf"]').content;
const $ = (id) => document.getElementById(id);
const state = { listing: null, selected: new Set(), open: null, lastCounts: '' };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children)
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  return node;
}

async function api(path, body) {
  const init =
    body === undefined
      ? { credentials: 'same-origin' }
      : {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json', 'x-wharf-csrf': csrf },
          body: JSON.stringify(body),
        };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

function toast(text, error = false) {
  const t = $('toast');
  t.textContent = text;
  t.className = error ? 'toast error' : 'toast';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    t.hidden = true;
  }, 6000);
}

// --- overview, live over server-sent events -------------------------------------------------------

/** A group's backlog change per second, signed (negative: draining); a dash before a second reading. */
function rateText(rate) {
  if (rate === undefined) return '–';
  return rate > 0 ? `+${rate}` : String(rate);
}

function renderOverview(overview) {
  $('broker').textContent = overview.broker;
  const body = $('overview').tBodies[0];
  body.replaceChildren(
    ...overview.groups.map((g) => {
      const replayAll = el('button', { type: 'button', class: 'replay-group', disabled: !g.deadLetters }, 'Replay all');
      replayAll.addEventListener('click', () =>
        replay({ channel: g.channel, group: g.group }, `every dead letter of ${g.channel}/${g.group}`),
      );
      return el(
        'tr',
        { 'data-group': `${g.channel}/${g.group}` },
        el('td', {}, g.channel),
        el('td', {}, g.group),
        ...(g.error
          ? [el('td', { colSpan: 6, class: 'muted' }, g.error)]
          : [g.ready, g.inFlight, g.delayed, rateText(g.rate), g.deadLetters, g.consumers ?? '–'].map((n, i) =>
              el(
                'td',
                { class: 'num', 'data-col': ['ready', 'inFlight', 'delayed', 'rate', 'deadLetters', 'consumers'][i] },
                n,
              ),
            )),
        el('td', {}, replayAll),
      );
    }),
  );
  const counts = overview.groups.map((g) => `${g.channel}/${g.group}:${g.deadLetters ?? '-'}`).join(',');
  if (counts !== state.lastCounts) {
    state.lastCounts = counts;
    loadDeadLetters();
  }
}

function connect() {
  const source = new EventSource('/api/events');
  source.addEventListener('overview', (e) => {
    $('banner').hidden = true;
    $('live').textContent = 'live';
    $('live').className = 'pill';
    renderOverview(JSON.parse(e.data));
  });
  source.addEventListener('broker-error', (e) => {
    const { broker, error } = JSON.parse(e.data);
    showDown(
      `The broker ${broker} cannot be reached: ${error}. Figures are from the last successful read; nothing is lost, and this page recovers when the broker is back.`,
    );
  });
  source.onerror = () => {
    showDown('Lost the connection to the console server. Retrying…');
  };
}

function showDown(text) {
  $('banner').textContent = text;
  $('banner').hidden = false;
  $('live').textContent = 'broker unreachable';
  $('live').className = 'pill down';
}

// --- dead letters ---------------------------------------------------------------------------------

function query() {
  const q = new URLSearchParams();
  if ($('f-reason').value) q.set('reason', $('f-reason').value);
  if ($('f-error').value) q.set('errorType', $('f-error').value);
  if ($('f-search').value.trim()) q.set('search', $('f-search').value.trim());
  return q;
}

let loading = null;
async function loadDeadLetters() {
  const mine = Symbol('load');
  loading = mine;
  try {
    const listing = await api(`/api/dead-letters?${query()}`);
    if (mine !== loading) return;
    state.listing = listing;
    renderDeadLetters();
  } catch (error) {
    toast(`Could not list dead letters: ${error.message}`, true);
  }
}

function keepOptions(select, values) {
  const current = select.value;
  const wanted = ['', ...new Set([current, ...values].filter(Boolean))];
  select.replaceChildren(...wanted.map((v) => el('option', { value: v }, v || 'any')));
  select.value = current;
}

function renderDeadLetters() {
  const { deadLetters, summary } = state.listing;
  $('dl-count').textContent = `(${deadLetters.length} shown)`;
  keepOptions(
    $('f-reason'),
    summary.map((s) => s.reason),
  );
  keepOptions(
    $('f-error'),
    summary.map((s) => s.errorType),
  );
  $('summary').replaceChildren(
    ...summary.map((s) => {
      const chip = el('button', { type: 'button', class: 'chip' }, `${s.reason} · ${s.errorType}: ${s.count}`);
      chip.addEventListener('click', () => {
        keepOptions($('f-reason'), [s.reason]);
        keepOptions($('f-error'), [s.errorType]);
        $('f-reason').value = s.reason;
        $('f-error').value = s.errorType;
        loadDeadLetters();
      });
      return chip;
    }),
  );
  const keys = new Set(deadLetters.map((d) => d.key));
  for (const key of [...state.selected]) if (!keys.has(key)) state.selected.delete(key);
  $('dead-letters').tBodies[0].replaceChildren(
    ...deadLetters.map((d) => {
      const box = el('input', { type: 'checkbox', checked: state.selected.has(d.key) });
      box.setAttribute('aria-label', `select ${d.id}`);
      box.addEventListener('click', (e) => e.stopPropagation());
      box.addEventListener('change', () => {
        if (box.checked) state.selected.add(d.key);
        else state.selected.delete(d.key);
        updateButtons();
      });
      const row = el(
        'tr',
        { class: 'dead-letter', 'data-key': d.key, 'data-id': d.id },
        el('td', {}, box),
        el('td', {}, el('div', {}, d.event?.type ?? 'undecodable'), el('code', {}, d.id)),
        el('td', {}, `${d.channel} / ${d.group}`),
        el('td', {}, d.info?.reason ?? '?'),
        el(
          'td',
          {},
          el('div', {}, d.info?.errorType ?? ''),
          el('div', { class: 'muted' }, d.info?.errorMessage ?? d.decodeError ?? ''),
        ),
        el('td', { class: 'num' }, d.info?.attempts ?? '?'),
        el('td', {}, d.info?.lastFailureAt ?? ''),
      );
      row.addEventListener('click', () => openDetail(d.key));
      return row;
    }),
  );
  $('empty').hidden = deadLetters.length > 0;
  updateButtons();
}

function updateButtons() {
  $('replay-selected').disabled = state.selected.size === 0;
  $('purge-selected').disabled = state.selected.size === 0;
}

async function replay(selection, what) {
  try {
    const outcome = await api('/api/replay', selection);
    const notes = [
      ...outcome.skipped.map((s) => `${s.key}: ${s.why}`),
      ...outcome.notFound.map((id) => `${id}: no longer a dead letter`),
    ];
    toast(
      `Replayed ${outcome.done.length} (${what}).${notes.length ? ` Left: ${notes.join('; ')}` : ''}`,
      notes.length > 0,
    );
    for (const key of outcome.done) state.selected.delete(key);
  } catch (error) {
    toast(`Replay failed: ${error.message}`, true);
  }
  await loadDeadLetters();
}

function confirmPurge(count) {
  return new Promise((resolve) => {
    const dialog = $('confirm');
    $('c-text').textContent =
      `${count} dead letter${count === 1 ? '' : 's'} will be removed for good; they cannot be replayed afterwards.`;
    $('c-input').value = '';
    $('c-ok').disabled = true;
    dialog.onclose = () => resolve(dialog.returnValue === 'ok' && $('c-input').value.trim() === 'purge');
    dialog.showModal();
  });
}

async function purge(keys) {
  if (!(await confirmPurge(keys.length))) return toast('Nothing purged.');
  try {
    const outcome = await api('/api/purge', { keys, confirm: 'purge' });
    toast(`Purged ${outcome.done.length}.`);
    for (const key of outcome.done) state.selected.delete(key);
  } catch (error) {
    toast(`Purge failed: ${error.message}`, true);
  }
  await loadDeadLetters();
}

// --- detail ---------------------------------------------------------------------------------------

async function openDetail(key) {
  let answer;
  try {
    answer = await api(`/api/dead-letter?key=${encodeURIComponent(key)}`);
  } catch (error) {
    toast(error.message, true);
    return loadDeadLetters();
  }
  const d = answer.deadLetter;
  state.open = d.key;
  $('d-title').textContent = `${d.event?.type ?? 'Undecodable message'} ${d.id}`;
  const info = d.info ?? {};
  const trace = typeof d.event?.traceparent === 'string' ? d.event.traceparent.split('-')[1] : undefined;
  const rows = [
    ['Channel / group', `${d.channel} / ${d.group}`],
    ['Reason', info.reason],
    ['Error', `${info.errorType ?? ''}: ${info.errorMessage ?? d.decodeError ?? ''}`],
    ['Stack', info.errorStack ? info.errorStack.split(' | ').join('\n') : 'none recorded'],
    ['Attempts', info.attempts],
    ['First failure', info.firstFailureAt],
    ['Last failure', info.lastFailureAt],
    ['Host', info.host],
    ['Correlation id', d.event?.correlationid ?? '–'],
    ['Trace id', trace ?? '–'],
    ['Replays so far', d.replayCount],
  ];
  $('d-meta').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v ?? '–')]));
  const { data, ...attributes } = d.event ?? {};
  $('d-payload').textContent = d.event ? (JSON.stringify(data, null, 2) ?? '(no data)') : d.decodeError;
  $('d-attributes').textContent = JSON.stringify(attributes, null, 2);
  $('d-edit').hidden = !(answer.allowEdit && d.event);
  $('d-edit-data').value = JSON.stringify(data ?? null, null, 2);
  $('d-replay').disabled = !d.event;
  if (!$('detail').open) $('detail').showModal();
}

$('d-replay').addEventListener('click', async () => {
  const key = state.open;
  $('detail').close();
  await replay({ keys: [key] }, key.split('/').pop());
});
$('d-purge').addEventListener('click', async () => {
  const key = state.open;
  $('detail').close();
  await purge([key]);
});
$('d-edit-send').addEventListener('click', async () => {
  let data;
  try {
    data = JSON.parse($('d-edit-data').value);
  } catch (error) {
    return toast(`The payload is not JSON: ${error.message}`, true);
  }
  try {
    const { sent } = await api('/api/edit', { key: state.open, data });
    $('detail').close();
    toast(`Sent an edited copy as ${sent.id}.`);
  } catch (error) {
    toast(`Refused: ${error.message}`, true);
  }
  await loadDeadLetters();
});

// --- wiring ---------------------------------------------------------------------------------------

$('f-reason').addEventListener('change', loadDeadLetters);
$('f-error').addEventListener('change', loadDeadLetters);
let typing;
$('f-search').addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(loadDeadLetters, 250);
});
$('f-clear').addEventListener('click', () => {
  $('f-reason').value = '';
  $('f-error').value = '';
  $('f-search').value = '';
  loadDeadLetters();
});
$('select-all').addEventListener('change', (e) => {
  for (const d of state.listing?.deadLetters ?? []) {
    if (e.target.checked) state.selected.add(d.key);
    else state.selected.delete(d.key);
  }
  renderDeadLetters();
});
$('replay-selected').addEventListener('click', () =>
  replay({ keys: [...state.selected] }, `${state.selected.size} selected`),
);
$('purge-selected').addEventListener('click', () => purge([...state.selected]));
$('c-input').addEventListener('input', () => {
  $('c-ok').disabled = $('c-input').value.trim() !== 'purge';
});

connect();
loadDeadLetters();
