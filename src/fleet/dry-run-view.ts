// What `mxcert renew --dry-run` says about a fleet certificate
// (docs/architecture.md, "Fleet"): a pure function of what was read from
// etcd and this host's state, so it can be tested without etcd. It mirrors
// the real pass (src/renew/fleet.ts): the plan is made from the fleet's
// lineage, not this host's files; a pass that finds a leader acts as a
// member and orders nothing; one that finds none campaigns and, elected,
// orders when the lineage is due; every member then deploys the lineage.
import type { Plan } from '../schedule/plan.js';

export interface FleetDryRunInput {
  /** This host's member name. */
  member: string;
  /** Who holds the leader key now (undefined: nobody). */
  leader?: string;
  /** The lineage's unit for this key type (undefined: the fleet has none yet). */
  lineage?: { serial: string; generation: number; notAfter: string };
  /** Why the lineage's sealed key cannot be opened here, if it cannot. */
  sealError?: string;
  /** The serial this host's files hold now (undefined: nothing of mxcert's). */
  deployedSerial?: string;
  /** DANE is on in the config, or the fleet has a DANE journal for this key type. */
  dane: boolean;
  /** The fleet's DANE journal phase for this key type, if there is one. */
  danePhase?: string;
  /** The plan made from the lineage (as the leader would make it). */
  plan: Plan;
}

export interface FleetDryRun {
  leader: string | null;
  /** What this pass would be: `member` (someone leads) or `candidate` (it would campaign, and lead if elected). */
  role: 'member' | 'candidate';
  /** This pass would place an order (if elected). */
  wouldOrder: boolean;
  /** The serial this host would deploy from the stored lineage (undefined: none). */
  wouldDeploy?: string;
  danePhase: string | null;
  /** One sentence each: who leads, ordering, deploying, DANE. */
  lines: string[];
}

export function fleetDryRunView(i: FleetDryRunInput): FleetDryRun {
  const role = i.leader ? 'member' : 'candidate';
  const wouldOrder = role === 'candidate' && i.plan.due;
  const lines: string[] = [];
  if (i.leader) {
    const who = i.leader === i.member ? `${i.member} (this host, in another pass)` : i.leader;
    lines.push(`${who} leads the fleet: this pass would act as a member and order nothing`);
  } else {
    lines.push('no member leads now: this pass would campaign and, if elected, lead it');
  }
  const planned = i.lineage ? `the lineage (serial ${i.lineage.serial}, generation ${i.lineage.generation}, until ${i.lineage.notAfter})` : 'the fleet has no lineage yet; it';
  if (!i.plan.due) lines.push(`${planned} is not due (${i.plan.reason}, at ${i.plan.at.toISOString()})`);
  else if (wouldOrder) lines.push(`${planned} is due (${i.plan.reason}): elected, this pass would order once and publish the new lineage`);
  else lines.push(`${planned} is due (${i.plan.reason}): its leader orders, not this member`);
  const deploy = deployLine(i);
  lines.push(deploy.line);
  lines.push(i.danePhase ? `the fleet's DANE journal is in ${i.danePhase}` : i.dane ? 'DANE is on but the fleet has no DANE journal yet' : 'no DANE journal in the fleet');
  return { leader: i.leader ?? null, role, wouldOrder, ...(deploy.serial ? { wouldDeploy: deploy.serial } : {}), danePhase: i.danePhase ?? null, lines };
}

function deployLine(i: FleetDryRunInput): { line: string; serial?: string } {
  if (!i.lineage) return { line: 'nothing to deploy from the fleet: there is no lineage yet' };
  const l = i.lineage;
  if (i.sealError) return { line: `would refuse the stored lineage (serial ${l.serial}) and keep serving ${i.deployedSerial ?? 'what it has'}: ${i.sealError}` };
  if (i.deployedSerial === l.serial) return { line: `serves the lineage's serial ${l.serial} already: nothing to deploy` };
  const now = i.deployedSerial ? `serial ${i.deployedSerial}` : 'nothing of mxcert';
  // Under DANE the member's own look at DNS and the journal's hold decide (src/fleet/member-decide.ts); a dry run asks no DNS server.
  const gate = i.dane ? ', if the DANE journal and every authoritative server allow it' : '';
  return { line: `would deploy serial ${l.serial} (generation ${l.generation}) from the stored lineage${gate}; this host serves ${now} now`, serial: l.serial };
}
