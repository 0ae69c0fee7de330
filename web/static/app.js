// mfa-web: the phone approver page. Adds a phone (passkey + test request),
// signs in with the passkey, lists sign-in requests and answers them by
// number matching. The HTTP calls are those of web/API.md.
'use strict';

const STRINGS = {
  en: {
    title: 'Sign-in approver',
    language: 'Language',
    loading: 'Loading…',
    addIntro: 'Add this phone to approve your sign-ins: give it a name, then create a passkey.',
    phoneName: 'Name of this phone',
    phone: 'Phone',
    createPasskey: 'Create passkey',
    needName: 'Give this phone a name first.',
    addLinkMissing: 'This link is incomplete or was already used. Run the command in your terminal again for a new link.',
    testReady: 'Passkey created for {user}. Now approve the test request.',
    testNumber: 'Type the number shown in your terminal',
    testEnded: 'The test request ended ({outcome}). Start again in your terminal.',
    ready: 'Your phone is ready',
    readyGo: 'Show my sign-in requests',
    signinIntro: 'Sign in with the passkey on this phone to see and approve your sign-ins.',
    signin: 'Sign in with passkey',
    signinHint: 'You are not signed in.',
    signedOut: 'You are signed out.',
    signout: 'Sign out',
    signedInAs: 'Signed in as {user} on {phone}',
    working: 'Waiting for your passkey…',
    none: 'No sign-in is waiting for you',
    waitingOne: '1 sign-in is waiting for you',
    waitingMany: '{n} sign-ins are waiting for you',
    cardTitle: '{user} on {host}',
    testBadge: 'Test request',
    user: 'User',
    host: 'Host',
    service: 'Service',
    rhost: 'From',
    tty: 'Terminal',
    command: 'Command',
    time: 'Asked at',
    left: '{n} s left',
    cardNumber: 'Type the number shown on your screen',
    needNumber: 'Type the two-digit number first.',
    approve: 'Approve',
    deny: 'Deny',
    report: 'This was not me',
    reportConfirm: 'Report this sign-in as not yours? It will be denied and reported.',
    'o-approved': 'Approved',
    'o-wrong-number': 'Wrong number: request refused',
    'o-denied': 'Denied',
    'o-reported': 'Denied and reported',
    'o-expired': 'Expired',
    'o-cancelled': 'Cancelled',
    'o-ended': 'This request has ended',
    'e-bad-request': 'Something in the request was not right. Reload the page and try again.',
    'e-unknown': 'This sign-in request no longer exists.',
    'e-expired': 'Too late: this has expired.',
    'e-signed-out': 'You are signed out. Sign in again.',
    'e-csrf': 'This page is out of date. Reload it and try again.',
    'e-too-many': 'Too many attempts. Wait a moment and try again.',
    'e-refused': 'Not accepted: this passkey or link is not valid.',
    'e-unavailable': 'The service is not available right now. Try again later.',
    'e-network': 'No connection. Check your network and try again.',
    'e-passkey-cancelled': 'The passkey was not used. Try again.',
    'e-passkey-exists': 'This phone already has a passkey for this account.',
    'e-no-passkeys': 'This browser cannot use passkeys.',
    'e-error': 'Something went wrong. Try again.',
  },
  nl: {
    title: 'Aanmeldingen goedkeuren',
    language: 'Taal',
    loading: 'Laden…',
    addIntro: 'Voeg deze telefoon toe om je aanmeldingen goed te keuren: geef hem een naam en maak een passkey aan.',
    phoneName: 'Naam van deze telefoon',
    phone: 'Telefoon',
    createPasskey: 'Passkey aanmaken',
    needName: 'Geef deze telefoon eerst een naam.',
    addLinkMissing: 'Deze link is onvolledig of al gebruikt. Voer de opdracht in je terminal opnieuw uit voor een nieuwe link.',
    testReady: 'Passkey aangemaakt voor {user}. Keur nu het testverzoek goed.',
    testNumber: 'Typ het getal dat in je terminal staat',
    testEnded: 'Het testverzoek is beëindigd ({outcome}). Begin opnieuw in je terminal.',
    ready: 'Je telefoon is klaar',
    readyGo: 'Naar mijn aanmeldingen',
    signinIntro: 'Meld je aan met de passkey op deze telefoon om je aanmeldingen te zien en goed te keuren.',
    signin: 'Aanmelden met passkey',
    signinHint: 'Je bent niet aangemeld.',
    signedOut: 'Je bent afgemeld.',
    signout: 'Afmelden',
    signedInAs: 'Aangemeld als {user} op {phone}',
    working: 'Wachten op je passkey…',
    none: 'Er wacht geen aanmelding op jou',
    waitingOne: 'Er wacht 1 aanmelding op jou',
    waitingMany: 'Er wachten {n} aanmeldingen op jou',
    cardTitle: '{user} op {host}',
    testBadge: 'Testverzoek',
    user: 'Gebruiker',
    host: 'Host',
    service: 'Dienst',
    rhost: 'Vanaf',
    tty: 'Terminal',
    command: 'Opdracht',
    time: 'Gevraagd om',
    left: 'Nog {n} s',
    cardNumber: 'Typ het getal dat op je scherm staat',
    needNumber: 'Typ eerst het getal van twee cijfers.',
    approve: 'Goedkeuren',
    deny: 'Weigeren',
    report: 'Dit was ik niet',
    reportConfirm: 'Deze aanmelding melden als niet van jou? Het verzoek wordt geweigerd en gemeld.',
    'o-approved': 'Goedgekeurd',
    'o-wrong-number': 'Verkeerd getal: verzoek geweigerd',
    'o-denied': 'Geweigerd',
    'o-reported': 'Geweigerd en gemeld',
    'o-expired': 'Verlopen',
    'o-cancelled': 'Geannuleerd',
    'o-ended': 'Dit verzoek is afgelopen',
    'e-bad-request': 'Er klopte iets niet aan het verzoek. Laad de pagina opnieuw en probeer het nog eens.',
    'e-unknown': 'Dit aanmeldingsverzoek bestaat niet meer.',
    'e-expired': 'Te laat: dit is verlopen.',
    'e-signed-out': 'Je bent afgemeld. Meld je opnieuw aan.',
    'e-csrf': 'Deze pagina is verouderd. Laad hem opnieuw en probeer het nog eens.',
    'e-too-many': 'Te veel pogingen. Wacht even en probeer het opnieuw.',
    'e-refused': 'Niet geaccepteerd: deze passkey of link is niet geldig.',
    'e-unavailable': 'De dienst is nu niet beschikbaar. Probeer het later opnieuw.',
    'e-network': 'Geen verbinding. Controleer je netwerk en probeer het opnieuw.',
    'e-passkey-cancelled': 'De passkey is niet gebruikt. Probeer het opnieuw.',
    'e-passkey-exists': 'Deze telefoon heeft al een passkey voor dit account.',
    'e-no-passkeys': 'Deze browser kan geen passkeys gebruiken.',
    'e-error': 'Er ging iets mis. Probeer het opnieuw.',
  },
};

const OUTCOMES = ['approved', 'wrong-number', 'denied', 'expired', 'cancelled'];
const KEEP_ENDED_MS = 120000;
const RECONNECT_MS = 10000;
const $ = (sel) => document.querySelector(sel);

let lang = pickLang();
let csrf = '';
let who = null;
let addToken = null;
let defaultName = '';
let testReq = null;
let ceremony = false;
let events = null;
let reconnectTimer = 0;
let refreshing = false;
let refreshAgain = false;
let cardCount = 0;
let statusText = () => t('loading');
let statusError = false;
const cards = new Map();

// ---- language

function pickLang() {
  let saved = null;
  try { saved = localStorage.getItem('lang'); } catch { /* storage blocked */ }
  const page = (document.documentElement.lang || '').slice(0, 2).toLowerCase();
  if (STRINGS[saved]) return saved;
  return STRINGS[page] ? page : 'en';
}

function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

function applyLang() {
  document.documentElement.lang = lang;
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', t(el.dataset.tLabel));
  const name = $('#add-name');
  if (defaultName && name.value === defaultName) name.value = defaultName = phoneName();
  paintStatus();
  paintWho();
  paintTest();
  for (const card of cards.values()) paintCard(card);
}

function setLang(value) {
  if (!STRINGS[value]) return;
  lang = value;
  try { localStorage.setItem('lang', value); } catch { /* storage blocked */ }
  applyLang();
}

// ---- status line and errors

class Failure extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

function errorCode(err) {
  if (err instanceof Failure) return err.code;
  if (err && (err.name === 'NotAllowedError' || err.name === 'AbortError')) return 'passkey-cancelled';
  if (err && err.name === 'InvalidStateError') return 'passkey-exists';
  if (err && err.name === 'NotSupportedError') return 'no-passkeys';
  return 'error';
}

function errorText(err) {
  const key = 'e-' + errorCode(err);
  return STRINGS.en[key] ? t(key) : t('e-error');
}

function setStatus(text, error = false) {
  statusText = text;
  statusError = error;
  paintStatus();
}

function say(key, vars) { setStatus(() => t(key, vars)); }
function sayError(err) { setStatus(() => errorText(err), true); }

function paintStatus() {
  const el = $('#status');
  el.textContent = statusText();
  el.classList.toggle('error', statusError);
}

// ---- HTTP (API.md)

async function api(path, body) {
  const options = body === undefined
    ? { cache: 'no-store' }
    : {
      method: 'POST',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body),
    };
  let res;
  try {
    res = await fetch(path, options);
  } catch {
    throw new Failure('network');
  }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.ok) {
    if (data && typeof data === 'object') return data;
    throw new Failure('unavailable');
  }
  if (data && typeof data.error === 'string') throw new Failure(data.error);
  if (res.status === 401) throw new Failure('signed-out');
  if (res.status === 429) throw new Failure('too-many');
  throw new Failure(res.status >= 500 ? 'unavailable' : 'bad-request');
}

// ---- WebAuthn: base64url <-> ArrayBuffer

function fromB64u(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

function toB64u(buffer) {
  let bin = '';
  for (const byte of new Uint8Array(buffer)) bin += String.fromCharCode(byte);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function withIds(list) {
  return list && list.map((c) => ({ ...c, id: fromB64u(c.id) }));
}

function checkPasskeys() {
  if (!window.PublicKeyCredential || !navigator.credentials) throw new Failure('no-passkeys');
}

async function createPasskey(pk) {
  checkPasskeys();
  const publicKey = { ...pk, challenge: fromB64u(pk.challenge), user: { ...pk.user, id: fromB64u(pk.user.id) } };
  if (pk.excludeCredentials) publicKey.excludeCredentials = withIds(pk.excludeCredentials);
  const cred = await navigator.credentials.create({ publicKey });
  if (!cred) throw new Failure('passkey-cancelled');
  return {
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: toB64u(cred.response.attestationObject),
      clientDataJSON: toB64u(cred.response.clientDataJSON),
    },
  };
}

async function usePasskey(pk) {
  checkPasskeys();
  const publicKey = { ...pk, challenge: fromB64u(pk.challenge) };
  if (pk.allowCredentials) publicKey.allowCredentials = withIds(pk.allowCredentials);
  const cred = await navigator.credentials.get({ publicKey });
  if (!cred) throw new Failure('passkey-cancelled');
  const r = cred.response;
  return {
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: toB64u(r.authenticatorData),
      clientDataJSON: toB64u(r.clientDataJSON),
      signature: toB64u(r.signature),
      userHandle: r.userHandle ? toB64u(r.userHandle) : null,
    },
  };
}

async function approve(id, number) {
  const begin = await api('/api/approve/begin', { id, number });
  const credential = await usePasskey(begin.publicKey);
  const done = await api('/api/approve/finish', { id, number, credential });
  return done.outcome;
}

// ---- small helpers

function show(state) {
  for (const name of ['add', 'test', 'ready', 'signin', 'list']) $('#screen-' + name).hidden = name !== state;
  document.body.dataset.state = state;
}

function h(tag, attrs = {}, text = '') {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.textContent = text;
  return el;
}

function numberInput(el, onEnter) {
  el.addEventListener('input', () => { el.value = el.value.replace(/\D/g, '').slice(0, 2); });
  el.addEventListener('keydown', (e) => { if (e.key === 'Enter') onEnter(); });
}

function readNumber(input) {
  const value = input.value.trim();
  return /^[0-9]{2}$/.test(value) ? Number(value) : null;
}

function secondsLeft(deadline) {
  return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
}

function outcomeWord(outcome) {
  return OUTCOMES.includes(outcome) ? outcome : 'ended';
}

function formatTime(value) {
  const date = /^\d+$/.test(value || '') ? new Date(Number(value) * 1000) : new Date(value);
  if (!value || Number.isNaN(date.getTime())) return value || '—';
  const today = date.toDateString() === new Date().toDateString();
  return new Intl.DateTimeFormat(lang, today ? { timeStyle: 'medium' } : { dateStyle: 'short', timeStyle: 'medium' }).format(date);
}

function phoneName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return 'iPhone';
  if (/iPad/.test(ua)) return 'iPad';
  if (/Android/.test(ua)) return 'Android';
  return t('phone');
}

// ---- adding a phone

function startAdd() {
  show('add');
  defaultName = phoneName();
  $('#add-name').value = defaultName;
  setStatus(() => '');
}

async function onCreate() {
  if (ceremony || !addToken) return;
  const name = $('#add-name').value.trim();
  if (!name) {
    setStatus(() => t('needName'), true);
    return;
  }
  ceremony = true;
  $('#add-create').disabled = true;
  let done;
  try {
    say('working');
    const begin = await api('/api/register/begin', { token: addToken });
    const credential = await createPasskey(begin.publicKey);
    done = await api('/api/register/finish', { token: addToken, name, credential });
  } catch (err) {
    sayError(err);
    return;
  } finally {
    ceremony = false;
    $('#add-create').disabled = false;
  }
  addToken = null;
  csrf = done.csrf;
  who = { user: done.user, phone: name };
  startTest(done.request);
}

function startTest(req) {
  testReq = { req, deadline: Date.now() + Number(req.expires_in) * 1000, outcome: null };
  show('test');
  say('testReady', { user: who.user });
  $('#test-number').value = '';
  paintTest();
  $('#test-number').focus();
}

function paintTest() {
  if (!testReq) return;
  const over = Boolean(testReq.outcome);
  $('#test-left').textContent = over ? '' : t('left', { n: secondsLeft(testReq.deadline) });
  $('#test-number').disabled = over || ceremony;
  $('#test-approve').disabled = over || ceremony;
}

function endTest(outcome) {
  testReq.outcome = outcomeWord(outcome);
  setStatus(() => t('testEnded', { outcome: t('o-' + testReq.outcome).toLowerCase() }), true);
  paintTest();
}

async function onTestApprove() {
  if (ceremony || !testReq || testReq.outcome) return;
  const number = readNumber($('#test-number'));
  if (number === null) {
    setStatus(() => t('needNumber'), true);
    return;
  }
  ceremony = true;
  paintTest();
  say('working');
  try {
    const outcome = await approve(testReq.req.id, number);
    if (outcome === 'approved') {
      testReq = null;
      show('ready');
      say('ready');
      $('#ready-go').focus();
    } else {
      endTest(outcome);
    }
  } catch (err) {
    if (err.code === 'expired' || err.code === 'unknown') endTest(err.code === 'expired' ? 'expired' : 'ended');
    else sayError(err);
  } finally {
    ceremony = false;
    paintTest();
  }
}

// ---- signing in and out

async function resume(note) {
  try {
    enterList(await api('/api/session'));
  } catch (err) {
    toSignin(err.code === 'signed-out' ? note : err);
  }
}

async function onSignin() {
  if (ceremony) return;
  ceremony = true;
  $('#signin').disabled = true;
  try {
    say('working');
    const begin = await api('/api/signin/begin', {});
    const credential = await usePasskey(begin.publicKey);
    enterList(await api('/api/signin/finish', { credential }));
  } catch (err) {
    sayError(err);
  } finally {
    ceremony = false;
    $('#signin').disabled = false;
  }
}

async function onSignout() {
  try {
    await api('/api/signout', {});
  } catch (err) {
    if (err.code !== 'signed-out') {
      sayError(err);
      return;
    }
  }
  toSignin('signedOut');
}

function toSignin(reason) {
  closeEvents();
  csrf = '';
  who = null;
  testReq = null;
  for (const card of cards.values()) card.el.remove();
  cards.clear();
  show('signin');
  if (reason instanceof Error) sayError(reason);
  else say(reason || 'signinHint');
}

// ---- the list of requests

function enterList(session) {
  csrf = session.csrf;
  who = { user: session.user, phone: session.phone };
  show('list');
  paintWho();
  paintList();
  openEvents();
  refresh();
}

function paintWho() {
  $('#who').textContent = who ? t('signedInAs', who) : '';
}

function paintList() {
  const waiting = [...cards.values()].filter((c) => !c.outcome).length;
  if (waiting === 0) say('none');
  else if (waiting === 1) say('waitingOne');
  else say('waitingMany', { n: waiting });
}

function openEvents() {
  closeEvents();
  const source = new EventSource('/api/events');
  source.addEventListener('request', () => refresh());
  // Listed again once listening: a request made before then is not missed.
  source.addEventListener('open', () => refresh());
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      closeEvents();
      reconnectTimer = setTimeout(reconnect, RECONNECT_MS);
    }
  });
  events = source;
}

function closeEvents() {
  clearTimeout(reconnectTimer);
  if (events) events.close();
  events = null;
}

async function reconnect() {
  if (document.body.dataset.state !== 'list') return;
  try {
    csrf = (await api('/api/session')).csrf;
    openEvents();
    refresh();
  } catch (err) {
    if (err.code === 'signed-out') toSignin('signedOut');
    else reconnectTimer = setTimeout(reconnect, RECONNECT_MS);
  }
}

async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const { requests } = await api('/api/requests');
      if (document.body.dataset.state === 'list') merge(requests || []);
    } while (refreshAgain);
  } catch (err) {
    if (err.code === 'signed-out') toSignin('signedOut');
    else sayError(err);
  } finally {
    refreshing = false;
  }
}

function merge(requests) {
  const listed = new Set();
  let firstNew = null;
  for (const req of requests) {
    listed.add(req.id);
    if (!cards.has(req.id)) {
      const card = addCard(req);
      firstNew = firstNew || card;
    }
  }
  for (const card of cards.values()) {
    if (!listed.has(card.req.id) && !card.outcome && !card.busy) end(card, 'ended');
  }
  paintList();
  const focused = document.activeElement;
  if (firstNew && (!focused || focused === document.body)) firstNew.number.focus();
}

function addCard(req) {
  const card = {
    req,
    deadline: Date.now() + Number(req.expires_in) * 1000,
    outcome: null,
    reported: false,
    busy: false,
    hint: null,
    el: h('article', { class: 'request', 'data-id': req.id }),
    badge: h('p', { class: 'badge' }),
    title: h('h2', { class: 'title' }),
    details: h('dl', { class: 'details' }),
    left: h('p', { class: 'left' }),
    label: h('label'),
    number: h('input', {
      class: 'number', type: 'text', inputmode: 'numeric', pattern: '[0-9]*',
      maxlength: '2', autocomplete: 'off', enterkeyhint: 'done',
    }),
    approve: h('button', { type: 'button', class: 'approve' }),
    deny: h('button', { type: 'button', class: 'deny' }),
    report: h('button', { type: 'button', class: 'report' }),
    hintEl: h('p', { class: 'hint', role: 'alert' }),
    outcomeEl: h('p', { class: 'outcome', 'aria-live': 'polite' }),
  };
  card.number.id = 'number-' + (cardCount += 1);
  card.label.htmlFor = card.number.id;
  card.badge.hidden = !req.test;
  const actions = h('div', { class: 'actions' });
  actions.append(card.approve, card.deny, card.report);
  card.el.append(card.badge, card.title, card.details, card.left, card.label, card.number,
    actions, card.hintEl, card.outcomeEl);
  numberInput(card.number, () => answer(card, 'approve'));
  card.number.addEventListener('input', () => { card.hint = null; paintCard(card); });
  card.approve.addEventListener('click', () => answer(card, 'approve'));
  card.deny.addEventListener('click', () => answer(card, 'deny'));
  card.report.addEventListener('click', () => answer(card, 'report'));
  cards.set(req.id, card);
  $('#requests').prepend(card.el);
  paintCard(card);
  return card;
}

function paintCard(card) {
  const r = card.req;
  const rows = [['user', r.user], ['host', r.host], ['service', r.service], ['rhost', r.rhost], ['tty', r.tty]];
  if (r.command) rows.push(['command', r.command]);
  rows.push(['time', formatTime(r.time)]);
  card.details.replaceChildren(...rows.flatMap(([key, value]) => [h('dt', {}, t(key)), h('dd', {}, value || '—')]));
  card.badge.textContent = t('testBadge');
  card.title.textContent = t('cardTitle', { user: r.user || '', host: r.host || '' });
  card.label.textContent = t('cardNumber');
  card.approve.textContent = t('approve');
  card.deny.textContent = t('deny');
  card.report.textContent = t('report');
  paintLeft(card);
  const off = Boolean(card.outcome) || card.busy;
  for (const el of [card.number, card.approve, card.deny, card.report]) el.disabled = off;
  card.hintEl.textContent = card.hint ? card.hint() : '';
  if (card.outcome) {
    card.el.dataset.outcome = card.outcome;
    card.outcomeEl.textContent = t(card.reported && card.outcome === 'denied' ? 'o-reported' : 'o-' + card.outcome);
  }
}

function paintLeft(card) {
  card.left.textContent = card.outcome ? '' : t('left', { n: secondsLeft(card.deadline) });
}

function end(card, outcome, reported = false) {
  card.outcome = outcomeWord(outcome);
  card.reported = reported;
  card.endedAt = Date.now();
  card.hint = null;
  paintCard(card);
  paintList();
}

async function answer(card, action) {
  if (card.outcome || card.busy) return;
  let number = null;
  if (action === 'approve') {
    if (ceremony) return;
    number = readNumber(card.number);
    if (number === null) {
      card.hint = () => t('needNumber');
      paintCard(card);
      card.number.focus();
      return;
    }
  }
  if (action === 'report' && !window.confirm(t('reportConfirm'))) return;
  card.busy = true;
  card.hint = action === 'approve' ? () => t('working') : null;
  if (action === 'approve') ceremony = true;
  paintCard(card);
  try {
    const outcome = action === 'approve'
      ? await approve(card.req.id, number)
      : (await api('/api/' + action, { id: card.req.id })).outcome;
    card.busy = false;
    end(card, outcome, action === 'report');
  } catch (err) {
    card.busy = false;
    if (err.code === 'expired') end(card, 'expired');
    else if (err.code === 'unknown') end(card, 'ended');
    else if (err.code === 'signed-out') toSignin('signedOut');
    else card.hint = () => errorText(err);
  } finally {
    if (action === 'approve') ceremony = false;
    paintCard(card);
  }
}

function tick() {
  const now = Date.now();
  for (const card of cards.values()) {
    if (card.outcome) {
      if (now - card.endedAt > KEEP_ENDED_MS) {
        card.el.remove();
        cards.delete(card.req.id);
      }
    } else if (secondsLeft(card.deadline) === 0 && !card.busy) {
      end(card, 'expired');
    } else {
      paintLeft(card);
    }
  }
  if (testReq && !testReq.outcome) {
    if (secondsLeft(testReq.deadline) === 0 && !ceremony) endTest('expired');
    else paintTest();
  }
}

// ---- start

function start() {
  $('#lang').value = lang;
  $('#lang').addEventListener('change', (e) => setLang(e.target.value));
  $('#add-create').addEventListener('click', onCreate);
  $('#add-name').addEventListener('keydown', (e) => { if (e.key === 'Enter') onCreate(); });
  numberInput($('#test-number'), onTestApprove);
  $('#test-approve').addEventListener('click', onTestApprove);
  $('#ready-go').addEventListener('click', () => location.assign('/'));
  $('#signin').addEventListener('click', onSignin);
  $('#signout').addEventListener('click', onSignout);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || document.body.dataset.state !== 'list') return;
    if (events) refresh();
    else reconnect();
  });
  window.addEventListener('hashchange', () => {
    if (location.pathname === '/add' && new URLSearchParams(location.hash.slice(1)).has('t')) location.reload();
  });
  applyLang();
  setInterval(tick, 1000);
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});

  const onAdd = location.pathname === '/add';
  if (onAdd) {
    addToken = new URLSearchParams(location.hash.slice(1)).get('t');
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  }
  if (addToken) startAdd();
  else resume(onAdd ? 'addLinkMissing' : 'signinHint');
}

start();
