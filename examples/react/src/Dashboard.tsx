// A live table and sparklines of readings on one pattern, and a setpoint form.
import { useState } from "react";
import type { Message } from "rtnb";
import { usePublish, useTopic } from "rtnb/react";

/** What rtnb.sim devices publish. */
interface Reading {
  value: number;
  unit: string;
  setpoint: number;
  on: boolean;
}

export function Dashboard({ pattern }: { pattern: string }) {
  const { messages, status, transport, gaps } = useTopic<Reading>(pattern, { last: 50, limit: 300 });
  const byTopic = new Map<string, Message<Reading>[]>();
  for (const message of messages) {
    const list = byTopic.get(message.topic) ?? [];
    list.push(message);
    byTopic.set(message.topic, list);
  }
  return (
    <main>
      <h1>
        {pattern}{" "}
        <span className="status" id="status" data-status={status}>
          {status}
          {transport ? ` (${transport})` : ""}
        </span>
      </h1>
      <table id="readings">
        <thead>
          <tr>
            <th>topic</th>
            <th>value</th>
            <th>setpoint</th>
            <th>offset</th>
            <th>last {messages.length} messages</th>
          </tr>
        </thead>
        <tbody>
          {[...byTopic].sort(([a], [b]) => a.localeCompare(b)).map(([topic, list]) => {
            const latest = list[list.length - 1];
            return (
              <tr key={topic} data-topic={topic} data-offset={latest.offset} data-setpoint={latest.data.setpoint}>
                <td>{topic}</td>
                <td>
                  {latest.data.value.toFixed(1)} {latest.data.unit}
                </td>
                <td>{latest.data.setpoint}</td>
                <td>{latest.offset}</td>
                <td>
                  <Sparkline values={list.map((message) => message.data.value)} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p id="gaps" data-count={gaps.length}>
        {gaps.length === 0 ? "no gaps" : `${gaps.length} gaps, last: ${gaps[gaps.length - 1].reason}`}
      </p>
      <MessageCounter pattern={pattern} />
      <SetpointForm topics={[...byTopic.keys()]} />
    </main>
  );
}

/** A second component on the same pattern: the hub still sees one subscription. */
function MessageCounter({ pattern }: { pattern: string }) {
  const { latest } = useTopic<Reading>(pattern);
  return <p id="latest">latest: {latest ? `${latest.topic} #${latest.offset}` : "waiting"}</p>;
}

function SetpointForm({ topics }: { topics: string[] }) {
  const publish = usePublish();
  const [device, setDevice] = useState("");
  const [setpoint, setSetpoint] = useState(80);
  const [result, setResult] = useState("");
  const target = device || (topics[0] ?? "");
  const commandTopic = target.split("/").slice(0, 2).concat("cmd").join("/");

  async function send(event: React.FormEvent) {
    event.preventDefault();
    try {
      const ack = await publish(commandTopic, { setpoint });
      setResult(`sent to ${ack.topic} at offset ${ack.offset}`);
    } catch (error) {
      setResult(`refused: ${(error as Error).message}`);
    }
  }

  return (
    <form id="setpoint" onSubmit={send}>
      <select value={target} onChange={(event) => setDevice(event.target.value)}>
        {topics.map((topic) => (
          <option key={topic}>{topic}</option>
        ))}
      </select>{" "}
      <input type="number" value={setpoint} onChange={(event) => setSetpoint(Number(event.target.value))} />{" "}
      <button type="submit" disabled={!target}>
        set
      </button>{" "}
      <output>{result}</output>
    </form>
  );
}

function Sparkline({ values }: { values: number[] }) {
  const width = 160;
  const height = 30;
  if (values.length < 2) return <svg width={width} height={height} />;
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const points = values
    .map((value, index) => `${(index / (values.length - 1)) * width},${height - ((value - low) / span) * height}`)
    .join(" ");
  return (
    <svg width={width} height={height}>
      <polyline points={points} fill="none" stroke="#1f77b4" strokeWidth="1.5" />
    </svg>
  );
}
