export function PlaygroundPage() {
  return <div className="card">The playground arrives with the metering API.</div>;
}
