// The Agents SDK (@openai/agents) over its websocket transport against the local server: one typed message, the
// agent's answer. Usage: node agents_realtime.mjs wss://HOST:PORT/v1/realtime?model=embedded MESSAGE (key in
// OPENAI_API_KEY). Prints {sent, received, history, answer, errors} as JSON: every event on the wire both ways
// (audio payloads shortened) and the SDK's session.history; exit code 0 once the agent answered without an error.
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from '@openai/agents/realtime';

const [url, message] = process.argv.slice(2);
const result = { sent: [], received: [], history: [], answer: null, errors: [] };
const AUDIO_FIELD = { 'response.output_audio.delta': 'delta', 'input_audio_buffer.append': 'audio' };
const brief = (event) => {
  const field = AUDIO_FIELD[event.type];
  return field ? { ...event, [field]: `(${event[field].length} base64 characters)` } : event;
};

const transport = new OpenAIRealtimeWebSocket();
transport.on('connection_change', (status) => {
  if (status === 'disconnected') {
    result.errors.push('the connection closed before the answer');
    finish(1);
  }
  if (status !== 'connecting') return;
  const socket = transport.connectionState.websocket;
  const send = socket.send.bind(socket);
  socket.send = (data, ...rest) => {
    result.sent.push(brief(JSON.parse(data)));
    return send(data, ...rest);
  };
});
const agent = new RealtimeAgent({ name: 'Assistant', instructions: 'Answer in one short sentence.' });
const session = new RealtimeSession(agent, { transport, model: 'embedded' });

function finish(code) {
  result.history = session.history.map((item) => ({
    role: item.role,
    status: item.status,
    text: (item.content ?? []).map((part) => part.text ?? part.transcript ?? '').join(''),
  }));
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

const timer = setTimeout(() => {
  result.errors.push('timed out waiting for the answer');
  finish(1);
}, 90_000);
session.on('transport_event', (event) => result.received.push(brief(event)));
session.on('error', ({ error }) => result.errors.push(typeof error?.message === 'string' ? error.message : JSON.stringify(error)));
session.on('agent_end', (_context, _agent, text) => {
  clearTimeout(timer);
  result.answer = text;
  finish(result.errors.length ? 1 : 0);
});

try {
  await session.connect({ apiKey: process.env.OPENAI_API_KEY, url });
} catch (error) {
  result.errors.push(`connect: ${error.message}`);
  finish(1);
}
session.sendMessage(message);
