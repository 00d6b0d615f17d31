"""The contract is usable from another language: a Node client built from the .proto alone.

It loads proto/relyscope/v1/audit.proto with @grpc/proto-loader (no relyscope code, no
generated stubs) and calls Audit on the real server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from service_support import LOO, five_source_case, running_server

from relyscope.audits import run_audit
from tools.gen_proto import PROTO_ROOT

pytestmark = pytest.mark.real_model

NODE_CLIENT = r"""
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const fs = require('fs');
const [protoRoot, target, requestFile] = process.argv.slice(2);
const definition = loader.loadSync('relyscope/v1/audit.proto', {
  includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: false,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).relyscope.v1;
const client = new v1.AuditService(target, grpc.credentials.createInsecure(), {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
});
const request = JSON.parse(fs.readFileSync(requestFile, 'utf8'));
client.Audit(request, {deadline: Date.now() + 120000}, (err, response) => {
  if (err) { console.error(`Audit failed: ${err.code} ${err.details}`); process.exit(2); }
  console.log(JSON.stringify(response));
  client.close();
});
"""


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory) -> Path:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the Node client test needs node and npm on PATH; missing: "
                    f"{', '.join(missing)} (see the README's Development section)")
    folder = tmp_path_factory.mktemp("node-client")
    (folder / "package.json").write_text('{"name": "relyscope-node-client", "private": true}')
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                               "@grpc/grpc-js", "@grpc/proto-loader"], cwd=folder,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install of @grpc/grpc-js and @grpc/proto-loader timed out after 240 s "
                    "(the test needs the npm registry or a warm npm cache)")
    if done.returncode != 0:
        pytest.skip(f"npm install of @grpc/grpc-js and @grpc/proto-loader failed (the test "
                    f"needs the npm registry or a warm npm cache): {done.stderr.strip()[-500:]}")
    return folder


def test_a_node_client_from_the_proto_alone_calls_audit(node_modules, real_lm, tmp_path):
    case = five_source_case()
    data = case.to_dict()
    for source in data["sources"]:  # a Struct is {fields: ...} in proto-loader's objects
        source.pop("metadata")
    data.pop("metadata")
    request = {"id": "node-1", "case": data, "config": {"methods": ["loo"]},
               "parameters": {"max_tokens": {"int64_param": "4096"}}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (node_modules / "client.js").write_text(NODE_CLIENT)
    with running_server(real_lm) as server:
        done = subprocess.run(["node", "client.js", str(PROTO_ROOT), f"127.0.0.1:{server.port}",
                               str(tmp_path / "request.json")], cwd=node_modules,
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    library = run_audit(case, real_lm, LOO)  # the same audit, in-process
    response = json.loads(done.stdout)
    assert response["id"] == "node-1"
    report = response["report"]
    assert report["case_id"] == case.id
    assert int(report["answer_tokens"]) == library.answer_tokens
    node_loo = {u["id"]: u["reliance"]["loo"].get("value") for u in report["units"]}
    assert node_loo == pytest.approx({u.id: u.reliance["loo"] for u in library.units})
    assert max(node_loo, key=node_loo.get) == "d1"
