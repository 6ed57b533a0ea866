// The browser client: one click starts a WebRTC call to this server (POST /v1/realtime/calls, as OpenAI
// does it). The microphone goes up as Opus with echo cancellation on, so the agent can be interrupted by
// simply talking over it; the reply comes back as an audio track; the "oai-events" data channel carries
// the Realtime protocol events that this page turns into the live transcript, the reasoning and the
// measured latency. No build step, nothing fetched from anywhere but this server.

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), statusText: $("status-text"), talk: $("talk"), talkLabel: $("talk-label"),
  levelYou: $("level-you"), levelAgent: $("level-agent"), notice: $("notice"), noticeText: $("notice-text"),
  noticeAction: $("notice-action"), conversation: $("conversation"), empty: $("empty"), apiKey: $("api-key"),
  reasoning: $("reasoning"), remote: $("remote"),
};

const STAGE_NAMES = {
  end_of_turn_signal: "turn judged", end_of_turn: "end of turn", speculation_start: "reply started", final_transcript: "transcript",
  first_token: "first token", first_answer_token: "first word", first_clause: "first clause", first_tts_audio: "first speech",
  first_audio_out: "first packet",
};

// What tests and the curious can look at: every event received, and the audio graph.
const agent = (window.voiceAgent = { events: [], audioContext: null, microphone: null, speaker: null, pc: null });

let call = null; // {pc, channel, stream, context, ended}
let userSpeaking = false;
let awaitingReply = false; // from the end of the user's turn to the end of the reply
const turns = new Map(); // user item id or response id -> article
const replyItems = new Map(); // assistant item id -> response id

// ---- settings ---------------------------------------------------------------------------------------

ui.apiKey.value = localStorage.getItem("voice-agent.api-key") ?? "";
ui.reasoning.value = localStorage.getItem("voice-agent.reasoning") ?? "0";
ui.apiKey.addEventListener("change", () => localStorage.setItem("voice-agent.api-key", ui.apiKey.value.trim()));
ui.reasoning.addEventListener("change", () => {
  localStorage.setItem("voice-agent.reasoning", ui.reasoning.value);
  sendSettings();
});

// ---- the call -----------------------------------------------------------------------------------------

ui.talk.addEventListener("click", () => (call ? hangUp("Call ended.") : start()));
ui.noticeAction.addEventListener("click", () => start());
window.addEventListener("pagehide", () => call && hangUp("Call ended.")); // the server frees the session at once

async function start() {
  hideNotice();
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    return fail("The microphone is only available to pages served over HTTPS or from this computer (localhost). Open this page that way.");
  }
  const current = (call = { pc: null, channel: null, stream: null, context: new AudioContext(), ended: false }); // in the click: may play
  setTalking(true);
  try {
    await connect(current);
  } catch (error) {
    fail(`The call could not start: ${error?.message ?? error}`, current);
  }
}

async function connect(current) {
  setStatus("connecting", "Asking for the microphone…");
  try {
    current.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
  } catch (error) {
    return fail(microphoneProblem(error), current);
  }
  if (current.ended) return;
  const context = (agent.audioContext = current.context);
  agent.microphone = context.createMediaStreamSource(current.stream);
  const micLevel = context.createAnalyser();
  agent.microphone.connect(micLevel);

  setStatus("connecting", "Connecting…");
  const pc = (current.pc = agent.pc = new RTCPeerConnection());
  for (const track of current.stream.getAudioTracks()) pc.addTrack(track, current.stream);
  const channel = (current.channel = pc.createDataChannel("oai-events"));
  channel.addEventListener("open", sendSettings);
  channel.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
  channel.addEventListener("close", () => fail("The server ended the session.", current));
  pc.addEventListener("track", (event) => playReply(event.streams[0] ?? new MediaStream([event.track]), context));
  pc.addEventListener("connectionstatechange", () => onConnectionState(current));

  await pc.setLocalDescription();
  await iceGathered(pc, 2000);
  let response;
  try {
    const headers = { "Content-Type": "application/sdp" };
    if (ui.apiKey.value.trim()) headers.Authorization = `Bearer ${ui.apiKey.value.trim()}`;
    response = await fetch("/v1/realtime/calls", { method: "POST", body: pc.localDescription.sdp, headers });
  } catch {
    return fail("The server is not reachable. Is realtime serve running?", current);
  }
  if (current.ended) return;
  if (response.status !== 201) return fail(await refusal(response), current);
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  meter(current, micLevel);
}

function hangUp(message) {
  const current = call;
  call = null;
  if (current) {
    current.ended = true;
    current.channel?.close();
    current.pc?.close();
    current.stream?.getTracks().forEach((track) => track.stop());
    current.context.close();
  }
  ui.remote.srcObject = null;
  userSpeaking = awaitingReply = false;
  setTalking(false);
  setStatus("idle", message);
}

function fail(message, current = call) {
  if (current !== call) return; // a call already ended or replaced
  hangUp("Not connected");
  showNotice(message);
}

function onConnectionState(current) {
  if (current !== call) return;
  const state = current.pc.connectionState;
  if (state === "connected") setStatus("listening", "Listening");
  else if (state === "disconnected") setStatus("connecting", "Connection interrupted…");
  else if (state === "failed") fail("Lost the connection to the server.", current);
}

function playReply(stream, context) {
  // Chrome feeds a remote stream into WebAudio only while a media element plays it too (muted here).
  ui.remote.srcObject = stream;
  ui.remote.play().catch(() => {});
  agent.speaker = context.createAnalyser();
  context.createMediaStreamSource(stream).connect(agent.speaker);
  agent.speaker.connect(context.destination);
}

function iceGathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // whatever was gathered by then; the server finds the rest itself
  });
}

function microphoneProblem(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone permission was refused. Allow the microphone for this page (the icon in the address bar), then try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in, then try again.";
    case "NotReadableError":
      return "The microphone is busy or failed to start (another application may be using it).";
    default:
      return `The microphone could not be opened: ${error?.message ?? error}`;
  }
}

async function refusal(response) {
  let detail = "";
  try {
    detail = response.headers.get("Content-Type")?.includes("json") ? (await response.json()).error?.message : await response.text();
  } catch {}
  if (response.status === 401) return "The server needs an API key: enter it under Settings, then try again.";
  if (response.status === 403) return "The server does not accept calls from this page's address.";
  if (response.status === 503) return "The server is busy (all sessions in use). Try again in a moment.";
  return `The server refused the call (${response.status}). ${detail ?? ""}`.trim();
}

function sendSettings() {
  const channel = call?.channel;
  if (channel?.readyState !== "open") return;
  const budget = Number(ui.reasoning.value);
  // "extensions": the reasoning, latency and paused/resumed reply events this page shows (documented extensions; off by
  // default)
  const session = { reasoning: { budget_tokens: budget }, extensions: ["thinking", "latency", "pause"] };
  channel.send(JSON.stringify({ type: "session.update", session }));
}

// ---- events -----------------------------------------------------------------------------------------

function onEvent(event) {
  agent.events.push({ at: performance.now(), event });
  if (agent.events.length > 5000) agent.events.shift();
  switch (event.type) {
    case "session.created":
      if (turns.size) ui.conversation.append(Object.assign(document.createElement("p"), { className: "divider", textContent: "new session" }));
      break;
    case "input_audio_buffer.speech_started":
      userSpeaking = true;
      userTurn(event.item_id);
      break;
    case "input_audio_buffer.speech_stopped":
      userSpeaking = false;
      awaitingReply = true;
      setStatus("thinking", "Thinking…");
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const text = userTurn(event.item_id).querySelector(".text");
      text.textContent = event.transcript ?? text.textContent + event.delta;
      break;
    }
    case "conversation.item.input_audio_transcription.completed":
      if (event.transcript.trim()) finalText(userTurn(event.item_id), event.transcript);
      else removeTurn(event.item_id);
      break;
    case "conversation.item.deleted": // noise, not words: no reply comes
      removeTurn(event.item_id);
      awaitingReply = false;
      break;
    case "response.created":
      awaitingReply = true;
      agentTurn(event.response.id);
      setStatus("thinking", "Thinking…");
      break;
    case "response.output_item.added":
      replyItems.set(event.item.id, event.response_id);
      break;
    case "response.thinking.delta": {
      const details = agentTurn(event.response_id).querySelector(".reasoning");
      if (details.hidden) {
        details.hidden = false;
        details.open = true; // open while it streams
      }
      details.querySelector(".thought").textContent += event.delta;
      break;
    }
    case "response.output_audio_transcript.delta":
    case "response.audio_transcript.delta": {
      const turn = agentTurn(event.response_id);
      turn.querySelector(".reasoning").open = false; // the reasoning folds away when the answer begins
      turn.querySelector(".text").textContent += event.delta;
      setStatus("speaking", "Speaking");
      break;
    }
    case "output_audio_buffer.paused": // speech over the reply paused it while it is judged
      tag(event.response_id, "paused");
      break;
    case "output_audio_buffer.resumed": // a backchannel or noise: the reply plays on from where it paused
      tag(event.response_id, "resumed");
      break;
    case "output_audio_buffer.cleared":
      tag(event.response_id, "interrupted");
      break;
    case "response.done": {
      awaitingReply = false; // the status goes back to "Listening" once its audio has played
      const { id, status, status_details: details, output } = event.response;
      if (status !== "completed") {
        tag(id, { turn_detected: "interrupted", client_cancelled: "cancelled" }[details?.reason] ?? status);
        heardOnly(id, output[0]?.content[0]?.transcript ?? "");
      }
      break;
    }
    case "conversation.item.truncated": // cut while its audio was still playing
      tag(replyItems.get(event.item_id), "interrupted");
      heardOnly(replyItems.get(event.item_id), event.transcript ?? "");
      break;
    case "response.latency":
      showLatency(agentTurn(event.response_id), event.latency);
      break;
    case "error":
      showNotice(`The server says: ${event.error.message}`, false);
      break;
  }
  if (userSpeaking) setStatus("user", "You are speaking");
}

// ---- the conversation -------------------------------------------------------------------------------

function userTurn(itemId) {
  return turns.get(itemId) ?? addTurn(itemId, "user-turn", "…");
}

function agentTurn(responseId) {
  return turns.get(responseId) ?? addTurn(responseId, "agent-turn", "");
}

function addTurn(id, template, text) {
  const turn = $(template).content.firstElementChild.cloneNode(true);
  turn.querySelector(".text").textContent = text;
  turn.classList.add("live");
  turns.set(id, turn);
  ui.empty.hidden = true;
  ui.conversation.append(turn);
  turn.scrollIntoView({ block: "end", behavior: "smooth" });
  return turn;
}

function finalText(turn, text) {
  turn.querySelector(".text").textContent = text;
  turn.classList.remove("live");
}

function removeTurn(id) {
  turns.get(id)?.remove();
  turns.delete(id);
  ui.empty.hidden = turns.size > 0;
}

function tag(responseId, label) {
  const turn = turns.get(responseId);
  if (!turn) return;
  const element = turn.querySelector(".tag");
  element.textContent = label;
  element.hidden = false;
}

function heardOnly(responseId, heard) {
  // Text arrives ahead of the audio it belongs to: after an interruption, what was not heard is struck out.
  const text = turns.get(responseId)?.querySelector(".text");
  if (!text) return;
  const said = text.textContent.trim().replace(/\s+/g, " ");
  const unheard = said.startsWith(heard) ? said.slice(heard.length) : "";
  text.replaceChildren(heard, Object.assign(document.createElement("s"), { className: "unheard", textContent: unheard }));
}

// The semantic end-of-turn judgment names its verdict and the audio model's probability that the turn was finished.
function stageName(name, judgment) {
  if (name !== "end_of_turn_signal" || !judgment || judgment.complete == null) return STAGE_NAMES[name];
  const sound = judgment.probability == null ? "" : `, sounded ${Math.round(100 * judgment.probability)}% finished`;
  return `turn judged ${judgment.complete ? "finished" : "unfinished"}${sound}`;
}

function showLatency(turn, latency) {
  turn.classList.remove("live");
  if (latency.first_packet_delay_ms == null) return;
  const box = turn.querySelector(".latency");
  const stages = Object.entries(latency.stages_ms).filter(([name, ms]) => name in STAGE_NAMES && ms != null);
  const end = Math.max(latency.first_packet_delay_ms, ...stages.map(([, ms]) => ms), 1);
  box.querySelector(".delay").textContent = `First sound ${Math.round(latency.first_packet_delay_ms)} ms after you stopped`;
  const span = (className, textContent = "") => Object.assign(document.createElement("span"), { className, textContent });
  box.querySelector(".stages").replaceChildren(...stages.map(([name, ms]) => {
    const item = document.createElement("li");
    const track = span("track");
    track.append(span("fill"));
    track.firstChild.style.width = `${Math.max(0, (100 * ms) / end)}%`;
    item.append(span("name", stageName(name, latency.end_of_turn)), track, span("ms", `${Math.round(ms)} ms`));
    return item;
  }));
  box.hidden = false;
}

// ---- status, notices, meters --------------------------------------------------------------------------

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = text;
}

function setTalking(talking) {
  ui.talk.classList.toggle("on", talking);
  ui.talkLabel.textContent = talking ? "Stop" : "Start talking";
}

function showNotice(message, canRetry = true) {
  ui.noticeText.textContent = message;
  ui.noticeAction.hidden = !canRetry;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
}

function meter(current, micLevel) {
  const you = new Float32Array(micLevel.fftSize);
  const level = (analyser, buffer) => {
    analyser.getFloatTimeDomainData(buffer);
    const rms = Math.sqrt(buffer.reduce((sum, x) => sum + x * x, 0) / buffer.length);
    return Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-9) + 60) / 60)); // -60 dBFS .. 0 dBFS
  };
  let agentBuffer = null;
  let quietSince = performance.now();
  const tick = () => {
    if (current.ended) {
      ui.levelYou.style.transform = ui.levelAgent.style.transform = "scaleX(0)";
      return;
    }
    ui.levelYou.style.transform = `scaleX(${level(micLevel, you)})`;
    if (agent.speaker) {
      agentBuffer ??= new Float32Array(agent.speaker.fftSize);
      const out = level(agent.speaker, agentBuffer);
      ui.levelAgent.style.transform = `scaleX(${out})`;
      if (out > 0.1) quietSince = performance.now();
    }
    const busy = userSpeaking || awaitingReply || performance.now() - quietSince < 400;
    if (!busy && ["thinking", "speaking"].includes(ui.status.dataset.state)) setStatus("listening", "Listening");
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
