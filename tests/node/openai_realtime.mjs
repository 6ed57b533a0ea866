// The `openai` SDK's realtime client on the runtime's native WebSocket, against the local server: one typed
// question, its spoken answer. Usage: node openai_realtime.mjs https://HOST:PORT/v1 QUESTION (key in
// OPENAI_API_KEY). The SDK always connects with wss:, so the server runs with --certfile and Node trusts the
// certificate through NODE_EXTRA_CA_CERTS. Prints {events, transcript, audio_bytes, status, errors} as JSON;
// exit code 0 once response.done came, 1 otherwise.
import OpenAI from 'openai';
import { OpenAIRealtimeWebSocket } from 'openai/realtime/websocket';

const [baseURL, question] = process.argv.slice(2);
const result = { events: [], transcript: '', audio_bytes: 0, status: null, errors: [] };

function finish(code) {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

const timer = setTimeout(() => {
  result.errors.push('timed out waiting for response.done');
  finish(1);
}, 90_000);

const rt = new OpenAIRealtimeWebSocket({ model: 'embedded' }, new OpenAI({ baseURL }));
rt.on('error', (error) => {
  result.errors.push(error.message);
  finish(1);
});
rt.on('event', (event) => result.events.push(event.type));
rt.on('response.output_audio_transcript.delta', (event) => {
  result.transcript += event.delta;
});
rt.on('response.output_audio.delta', (event) => {
  result.audio_bytes += Buffer.from(event.delta, 'base64').length;
});
rt.on('response.done', (event) => {
  clearTimeout(timer);
  result.status = event.response.status;
  rt.close();
  finish(event.response.status === 'completed' ? 0 : 1);
});
rt.socket.addEventListener('close', () => {
  result.errors.push('the connection closed before response.done');
  finish(1);
});
rt.socket.addEventListener('open', () => {
  rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'Answer in one short sentence.' } });
  rt.send({
    type: 'conversation.item.create',
    item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: question }] },
  });
  rt.send({ type: 'response.create' });
});
