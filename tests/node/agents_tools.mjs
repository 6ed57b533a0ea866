// The Agents SDK over its websocket transport, asked by voice: a question recorded as raw 24 kHz mono PCM16 is sent
// with session.sendAudio in 20 ms frames in real time, then silence until the agent has answered with its weather
// tool's result. Usage: node agents_tools.mjs ws://HOST:PORT/v1/realtime?model=embedded QUESTION.pcm (key in
// OPENAI_API_KEY). Prints {cities, answer, history, received, sent, errors, times} as JSON (weather_agent.mjs); exit code 0
// once the agent answered without an error.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { OpenAIRealtimeWebSocket } from '@openai/agents/realtime';
import { converse } from './weather_agent.mjs';

const [url, audioPath] = process.argv.slice(2);
const FRAME = 960; // 20 ms of 24 kHz PCM16
const SILENCE_S = 150; // at most: until the agent has answered

const transport = new OpenAIRealtimeWebSocket();
const sent = [];
transport.on('connection_change', (status) => {
  if (status !== 'connecting') return;
  const socket = transport.connectionState.websocket;
  const send = socket.send.bind(socket);
  socket.send = (data, ...rest) => {
    const event = JSON.parse(data);
    if (event.type !== 'input_audio_buffer.append') sent.push(event);
    return send(data, ...rest);
  };
});
const { session, result } = await converse(transport, { apiKey: process.env.OPENAI_API_KEY, url });
let answered = false;
result.then(() => (answered = true));

const speech = readFileSync(audioPath);
const silence = Buffer.alloc(FRAME);
const start = performance.now();
for (let i = 0; !answered && i < speech.length / FRAME + SILENCE_S * 50; i++) {
  const frame = i * FRAME < speech.length ? speech.subarray(i * FRAME, (i + 1) * FRAME) : silence;
  if (transport.status === 'connected') session.sendAudio(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.length));
  await sleep(Math.max(0, start + (i + 1) * 20 - performance.now())); // real time, without drift
}
const done = await result;
process.stdout.write(JSON.stringify({ ...done, sent }) + '\n');
process.exit(done.done && !done.errors.length ? 0 : 1);
