import { startHost, startAgent, cniBinDir, runCni, cniEnv } from '../test/harness/index.js';
import { startController } from '../test/harness/controller.js';
const ctl = await startController();
await ctl.client.createNetwork({ name: 'blue', ipv4Cidr: '198.18.0.0/16', tunnelType: 'TUNNEL_TYPE_VXLAN' });
const host = await startHost({ name: 'rp' });
const agent = await startAgent(host, { controller: ctl.target, vtep: '192.0.2.1' });
try {
  const c = await host.addContainer('c1', { empty: true });
  const r = await runCni(cniBinDir(host.dir), 'ADD', { cniVersion: '1.0.0', name: 'nosuch', type: 'loom', agentSocket: agent.socket }, cniEnv(c, 'id-x'));
  console.log(r.stdout);
  await new Promise((r) => setTimeout(r, 500));
  console.log(agent.logs.split('\n').filter((l) => !l.includes('"level":20')).slice(-15).join('\n'));
} finally {
  await agent.stop(); await host.stop(); await ctl.stop();
}
