export function ApiKeysPage() {
  return <div className="card">API keys arrive with the metering API.</div>;
}
