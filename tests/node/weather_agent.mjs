// The voice agent with a weather tool that agents_tools.mjs (Node, websocket) and agents_webrtc.html (Chromium,
// WebRTC; its import map resolves the two imports to the SDK's browser bundle and zod's ES modules) both run.
// converse(transport, connectOptions) connects a RealtimeSession and resolves, once the agent has answered with the
// tool's result (or after timeoutMs), with {cities, answer, history, received, errors, done, times}
// (times: ms from the start of connect() to connected, to the tool's start and to the answer).
import { RealtimeAgent, RealtimeSession, tool } from '@openai/agents/realtime';
import { z } from 'zod';

export const WEATHER = '{"sky": "sunny", "celsius": 21}';

const AUDIO = { 'response.output_audio.delta': 'delta' };
const brief = (event) => (AUDIO[event.type] ? { ...event, [AUDIO[event.type]]: `(${event[AUDIO[event.type]].length} base64 characters)` } : event);
const text = (item) => (item.content ?? []).map((part) => part.text ?? part.transcript ?? '').join('');

export async function converse(transport, connectOptions, timeoutMs = 150_000) {
  const result = { cities: [], answer: null, history: [], received: [], errors: [], done: false, times: {} };
  const start = performance.now();
  const mark = (name) => (result.times[name] = Math.round(performance.now() - start));
  const getWeather = tool({
    name: 'get_weather',
    description: 'Get the current weather in a city.',
    parameters: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      result.cities.push(city);
      return WEATHER;
    },
  });
  const agent = new RealtimeAgent({
    name: 'Assistant', instructions: 'You are a voice assistant. Use the tools to answer.', tools: [getWeather],
  });
  const session = new RealtimeSession(agent, { transport, model: 'embedded' });
  let toolEnded = false;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const timer = setTimeout(() => {
    result.errors.push('timed out waiting for the answer with the tool result');
    finish();
  }, timeoutMs);
  transport.on('connection_change', (status) => {
    if (status !== 'disconnected' || result.done) return;
    result.errors.push('the connection closed before the answer');
    finish();
  });
  session.on('transport_event', (event) => result.received.push(brief(event)));
  session.on('error', ({ error }) => result.errors.push(typeof error?.message === 'string' ? error.message : JSON.stringify(error)));
  session.on('agent_tool_start', () => mark('tool_ms'));
  session.on('agent_tool_end', () => (toolEnded = true));
  session.on('agent_end', (_context, _agent, answer) => {
    if (!toolEnded || !answer) return; // the reply that called the tool
    mark('answer_ms');
    result.answer = answer;
    result.done = true;
    finish();
  });
  try {
    await session.connect(connectOptions);
    mark('connected_ms');
  } catch (error) {
    result.errors.push(`connect: ${error?.message ?? error}`);
    finish();
  }
  const snapshot = async () => {
    await finished;
    clearTimeout(timer);
    result.history = session.history.map((item) => ({
      type: item.type, role: item.role, status: item.status, name: item.name, arguments: item.arguments,
      output: item.output, text: text(item),
    }));
    session.close();
    return result;
  };
  return { session, result: snapshot() };
}
