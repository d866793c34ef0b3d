export function UsagePage() {
  return <div className="card">Usage arrives with the metering API.</div>;
}
