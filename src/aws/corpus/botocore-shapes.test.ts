/**
 * Holds every fixture file to the botocore model it claims (ec2 2016-11-15,
 * route53resolver 2018-04-01, mgn 2020-02-26): member names, types and enum
 * values, walked from the operation's output shape. Needs python3 with
 * botocore (the AWS CLI v1 brings it); skipped where it is absent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { FIXTURES_DIR } from "./write.ts";

const SCRIPT = String.raw`
import json, gzip, os, glob, sys, botocore
D = os.path.join(os.path.dirname(botocore.__file__), "data")
def load(p):
    f = p + ".json"
    return json.load(open(f)) if os.path.exists(f) else json.load(gzip.open(f + ".gz"))
ec2 = load(D + "/ec2/2016-11-15/service-2")["shapes"]
r53 = load(D + "/route53resolver/2018-04-01/service-2")["shapes"]
mgn = load(D + "/mgn/2020-02-26/service-2")["shapes"]
OUT = {
  "describe-vpcs": (ec2, "DescribeVpcsResult"), "describe-subnets": (ec2, "DescribeSubnetsResult"),
  "describe-route-tables": (ec2, "DescribeRouteTablesResult"), "describe-security-groups": (ec2, "DescribeSecurityGroupsResult"),
  "describe-network-acls": (ec2, "DescribeNetworkAclsResult"), "describe-vpc-endpoints": (ec2, "DescribeVpcEndpointsResult"),
  "describe-network-interfaces": (ec2, "DescribeNetworkInterfacesResult"),
  "describe-vpc-peering-connections": (ec2, "DescribeVpcPeeringConnectionsResult"),
  "describe-prefix-lists": (ec2, "DescribePrefixListsResult"), "describe-vpc-attribute": (ec2, "DescribeVpcAttributeResult"),
  "list-resolver-endpoints": (r53, "ListResolverEndpointsResponse"),
  "list-resolver-endpoint-ip-addresses": (r53, "ListResolverEndpointIpAddressesResponse"),
  "describe-replication-configuration-templates": (mgn, "DescribeReplicationConfigurationTemplatesResponse"),
  "get-replication-configuration": (mgn, "ReplicationConfiguration"),
}
def check(S, shape, v, path, errs):
    s = S[shape]; t = s["type"]
    if t == "structure":
        if not isinstance(v, dict): errs.append(path + ": expected an object"); return
        for k, x in v.items():
            if k not in s["members"]: errs.append(path + "." + k + ": not a member of " + shape); continue
            check(S, s["members"][k]["shape"], x, path + "." + k, errs)
    elif t == "list":
        if not isinstance(v, list): errs.append(path + ": expected a list"); return
        for i, x in enumerate(v): check(S, s["member"]["shape"], x, path + "[" + str(i) + "]", errs)
    elif t == "map":
        if not isinstance(v, dict): errs.append(path + ": expected a map")
    elif t == "string":
        if not isinstance(v, str): errs.append(path + ": expected a string")
        # VpcEndpoint.State: the model says Available, the API answers available.
        elif "enum" in s and v not in s["enum"] and not (shape == "State" and v.lower() in [e.lower() for e in s["enum"]]):
            errs.append(path + ": " + v + " is not in " + shape)
    elif t == "boolean":
        if not isinstance(v, bool): errs.append(path + ": expected a boolean")
    elif t in ("integer", "long", "double", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)): errs.append(path + ": expected a number")
    elif t == "timestamp":
        if not isinstance(v, str): errs.append(path + ": expected a timestamp")
errs = []
files = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*", "*.json"))):
    b = os.path.basename(f)
    if b in ("case.json", "expected-findings.json"): continue
    key = next(k for k in sorted(OUT, key=len, reverse=True) if b.startswith(k))
    S, shape = OUT[key]
    files += 1
    check(S, shape, json.load(open(f)), os.path.relpath(f, sys.argv[1]), errs)
print(json.dumps({"files": files, "errors": errs}))
`;

const probe = spawnSync("python3", ["-c", "import botocore"], { encoding: "utf8" });
const available = probe.status === 0;

test(
  "every fixture file matches its botocore output shape",
  { skip: available ? false : "python3 with botocore not installed" },
  () => {
    const r = spawnSync("python3", ["-c", SCRIPT, FIXTURES_DIR], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { files: number; errors: string[] };
    assert.ok(result.files > 400, `${result.files} files checked`);
    assert.deepEqual(result.errors, []);
  },
);
