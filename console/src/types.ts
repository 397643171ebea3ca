/** The shapes the REST API answers with (see /openapi.json). */
export interface Mount {
  kind?: string;
  path?: string;
  sub_paths?: Record<string, string>;
  format?: string;
}

export interface Secret {
  name: string;
  scope: { tenant: string; resource_group: string };
  uid: string;
  type: string;
  provider_slug: string;
  description: string;
  labels: Record<string, string>;
  mount: Mount;
  keys: string[];
  version: number;
  create_time: string;
  update_time: string;
  data?: Record<string, string>;
  data_base64?: Record<string, string>;
}

export interface Identity {
  token_id: string;
  role: string;
  tenant: string;
  resource_groups: string[];
  deployment: string;
  scopes: Array<{ resource_group: string; label: string; write: boolean }>;
  any_resource_group: boolean;
  may: { write: boolean; reveal: boolean; tokens: boolean; audit: boolean; verify_audit: boolean };
}

export interface Templates {
  templates: Record<string, string[]>;
  secret_types: string[];
  registry_keys: { required: string[]; optional: string[] };
  mount_kinds: string[];
  env_formats: string[];
}

export interface Deployment {
  scope: { tenant: string; resource_group: string };
  name: string;
  secrets: string[];
  description: string;
  labels: Record<string, string>;
  version: number;
  update_time: string;
  resolved: Record<string, string>;
}

export interface RolloutAgent {
  agent_id: string;
  version: number;
  applied_time: string;
  last_seen_time: string;
  stale: boolean;
  /** A `lockbox-agent once` run: it applied `version` and exited; never stale, not in the live count. */
  one_shot?: boolean;
  problems: string[];
}

export interface Rollout {
  name: string;
  resource_group: string;
  time: string;
  secrets: Array<{ name: string; resource_group: string; missing: boolean; current_version: number; agents: RolloutAgent[]; current: number; total: number; summary: string }>;
}

export interface TokenInfo {
  id: string;
  role: string;
  tenant: string;
  resource_groups: string[];
  deployment: string;
  deployment_resource_group: string;
  description: string;
  create_time: string;
  expire_time: string;
  revoke_time: string;
}

export interface AuditEntry {
  seq: number;
  time: string;
  token_id: string;
  role: string;
  resource_group: string;
  action: string;
  target: string;
  version: number;
  outcome: string;
  count: number;
}
