# Generates the fleet benchmark's objects from the node fixture's manifest
# (hack/fixtures/gpu-nodes.sh --profile fleet --emit). Deterministic: same input and
# arguments, same output.
#
#   jq -f bench/fleet/objects.jq --argjson pools P --argjson deployments D \
#      --argjson reservations R --argjson namespaces NS < nodes.json
#
# Output: {labels: [{node, pool}], pools: [...], deployments: [...], reservations: [...],
#          summary: {...}}
#
# Pools. Nodes are grouped by (region, shape). The P pools are apportioned (largest
# remainder, by node count) first to the three request classes, each getting at least one:
# whole GPUs (h100, Exclusive), MIG (a100mig, h100mig) and shares (l4ts, TimeSlicing 4);
# then within a class to shapes, then to regions (ties: eu-west, us-east, eu-north,
# us-west). A (region, shape) group with m pools is cut into m runs of nodes (by name).
# Each pool selects its nodes by the label waterline.dev/node-pool=<pool> (the benchmark
# puts it on the nodes, as a cloud node-pool label would be) plus the region label, so no
# node is in two pools. 1000 nodes / 50 pools and 100 nodes / 5 pools both give pools of
# about 20 nodes. Every pool is BinPack.
#
# ModelDeployments. D deployments over `namespaces` namespaces team-00.., named
# md-0000..; by index: 8 in 10 whole GPUs (count 1 x10, 2 x5, 4 x3, 8 x2 in 20), 1 in 10
# MIG (3g.40gb, 1g.10gb, 2g.20gb), 1 in 10 time-slice shares (1/4, 1/2). Each takes a
# target pool of its class round robin and a type from a hash of its index: 50% Standard
# (the target's region), 30% DataZone (its data zone), 20% Global, so at least one pool
# allows it. Replicas 1, 2, 3 or 2 (mean 2). Whole-GPU demand is about 40% of the
# Exclusive GPUs at 1000 nodes and 53% at 100 nodes, so everything fits.
#
# PTUReservations. R reservations on whole-GPU Standard/DataZone deployments spread over
# the list, each for min(replicas, 2) replicas (units x 10,000 tokens/min, 100,000 per
# replica), scope Regional/DataZone matching the deployment.

def regionOrder: ["eu-west", "us-east", "eu-north", "us-west"];
def zoneOf($r): if ($r | startswith("eu-")) then "EU" else "US" end;
def classOf($shape): {h100: "whole", a100mig: "mig", h100mig: "mig", l4ts: "shares"}[$shape];
def products: {h100: "NVIDIA-H100-80GB-HBM3", a100mig: "NVIDIA-A100-SXM4-80GB",
               h100mig: "NVIDIA-H100-80GB-HBM3", l4ts: "NVIDIA-L4-SHARED"};
def migProfiles: {a100mig: ["1g.10gb", "2g.20gb", "3g.40gb"],
                  h100mig: ["1g.10gb", "1g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]};

# Largest-remainder apportionment of $n seats over $w (array of weights); $min: the
# minimum seats for each weight > 0 (when $n allows). Ties go to the lower index.
def apportion($n; $w; $min):
  ($w | add) as $tot |
  if $tot == 0 or $n == 0 then [$w[] | 0] else
  [$w[] | ($n * . / $tot)] as $q |
  [range($w | length) | if $w[.] > 0 then ([($q[.] | floor), $min] | max) else 0 end] as $a0 |
  ($n - ($a0 | add)) as $left |
  if $left < 0 then error("cannot give \($min) to each of \($w | length) with \($n)") else
  ([range($w | length) | {i: ., r: ($q[.] - $a0[.])}] | sort_by(-.r, .i) | .[:$left] | map(.i)) as $extra |
  [range($w | length) | $a0[.] + (if (. as $i | $extra | index($i)) != null then 1 else 0 end)]
  end end;

def hash($i): ($i * 2654435761) % 4294967296;

[.items[] | {name: .metadata.name, region: .metadata.labels["topology.kubernetes.io/region"],
             shape: .metadata.labels["waterline.dev/shape"]}] as $nodes
| ($nodes | group_by(.region + "/" + .shape) | map({key: (.[0].region + "/" + .[0].shape),
     value: (sort_by(.name) | map(.name))}) | from_entries) as $groups
| ["whole", "mig", "shares"] as $classes
| {whole: ["h100"], mig: ["a100mig", "h100mig"], shares: ["l4ts"]} as $shapesOf
| def count($shape; $region): ($groups[$region + "/" + $shape] // []) | length;
  def countShape($shape): [regionOrder[] as $r | count($shape; $r)] | add;
  apportion($pools; [$classes[] as $c | [$shapesOf[$c][] | countShape(.)] | add]; 1) as $perClass
| [range($classes | length) as $ci | $classes[$ci] as $c |
    apportion($perClass[$ci]; [$shapesOf[$c][] | countShape(.)]; 0) as $perShape |
    range($shapesOf[$c] | length) as $si | $shapesOf[$c][$si] as $shape |
    apportion($perShape[$si]; [regionOrder[] as $r | count($shape; $r)]; 0) as $perRegion |
    range(regionOrder | length) as $ri | regionOrder[$ri] as $region |
    $groups[$region + "/" + $shape] as $g | $perRegion[$ri] as $m |
    range($m) as $k |
    {name: "\($shape)-\($region)-\($k)", class: $c, shape: $shape, region: $region,
     nodes: $g[(($g | length) * $k / $m | floor):(($g | length) * ($k + 1) / $m | floor)]}
  ] as $plan
| ($plan | map(select(.class == "whole"))) as $wholePools
| ($plan | map(select(.class == "mig"))) as $migPools
| ($plan | map(select(.class == "mig" and .shape == "a100mig"))) as $a100migPools
| ($plan | map(select(.class == "shares"))) as $sharePools
| [range($deployments) as $i | hash($i) as $h |
    ($i % 10) as $slot |
    (if $slot < 8 then "whole" elif $slot == 8 then "mig" else "shares" end) as $class |
    (($i / 10 | floor) * (if $class == "whole" then 8 else 1 end) + (if $class == "whole" then $slot else 0 end)) as $j |
    (if $class == "mig" then ["3g.40gb", "1g.10gb", "2g.20gb"][$j % 3] else null end) as $mig |
    (if $class == "whole" then $wholePools
     elif $class == "shares" then $sharePools
     elif $mig == "2g.20gb" then $a100migPools
     else $migPools end) as $targets |
    $targets[$j % ($targets | length)] as $target |
    (($h / 7 | floor) % 10) as $t |
    (if $t < 5 then "Standard" elif $t < 8 then "DataZone" else "Global" end) as $type |
    ([1, 2, 3, 2][($h / 1709 | floor) % 4]) as $replicas |
    ("team-" + (($i % $namespaces) | tostring | if length < 2 then "0" + . else . end)) as $ns |
    {apiVersion: "waterline.dev/v1alpha1", kind: "ModelDeployment",
     metadata: {name: ("md-" + ($i | tostring | ("0000" + .)[-4:])), namespace: $ns,
                labels: {"waterline.dev/bench": "fleet"}},
     spec: ({model: {name: "bench/model-\($i % 37)", version: "v1"},
             deploymentType: $type,
             template: {spec: {image: "vllm/vllm-openai:v0.6.3",
                               args: ["--model=bench/model-\($i % 37)"],
                               ports: [{name: "http", containerPort: 8000}],
                               resources: {requests: {cpu: "2", memory: "16Gi"}}}},
             gpu: (if $class == "whole" then {count: [1,1,1,1,1,1,1,1,1,1,2,2,2,2,2,4,4,4,8,8][($h / 131 | floor) % 20]}
                   elif $class == "mig" then {migProfile: $mig}
                   else {sharesPerGpu: [4, 2][($h / 131 | floor) % 2]} end),
             replicas: $replicas,
             throughput: {tokensPerMinutePerReplica: 100000}}
            + (if $type == "Standard" then {region: $target.region}
               elif $type == "DataZone" then {dataZone: zoneOf($target.region)}
               else {} end))}
  ] as $mds
| ($mds | map(select(.spec.gpu.count != null and .spec.deploymentType != "Global"))) as $ptuCandidates
| [range($reservations) as $k |
    $ptuCandidates[($k * ($ptuCandidates | length) / ([$reservations, 1] | max)) | floor] as $md |
    ([$md.spec.replicas, 2] | min) as $r |
    {apiVersion: "waterline.dev/v1alpha1", kind: "PTUReservation",
     metadata: {name: ("ptu-" + ($k | tostring | ("00" + .)[-3:])), namespace: $md.metadata.namespace,
                labels: {"waterline.dev/bench": "fleet"}},
     spec: {deploymentRef: {name: $md.metadata.name}, units: ($r * 10),
            tokensPerMinutePerUnit: 10000,
            scope: (if $md.spec.deploymentType == "Standard"
                    then {type: "Regional", region: $md.spec.region}
                    else {type: "DataZone", dataZone: $md.spec.dataZone} end)}}
  ] as $ptus
| {labels: [$plan[] | .name as $p | .nodes[] | {node: ., pool: $p}],
   pools: [$plan[] |
     {apiVersion: "waterline.dev/v1alpha1", kind: "CapacityPool",
      metadata: {name: .name, labels: {"waterline.dev/bench": "fleet"}},
      spec: ({region: .region, dataZone: zoneOf(.region), gpuProduct: products[.shape],
              nodeSelector: {matchLabels: {"topology.kubernetes.io/region": .region,
                                           "waterline.dev/node-pool": .name}},
              schedulingStrategy: "BinPack"}
             + (if .shape == "h100" then {sharing: {mode: "Exclusive"}}
                elif .class == "mig" then {sharing: {mode: "MIG", migProfiles: migProfiles[.shape]}}
                else {sharing: {mode: "TimeSlicing", slicesPerGpu: 4}} end))}],
   deployments: $mds,
   reservations: $ptus,
   summary: {nodes: ($nodes | length),
             pooledNodes: ([$plan[].nodes | length] | add),
             pools: ($plan | length),
             poolsByShape: ($plan | group_by(.shape) | map({key: .[0].shape, value: length}) | from_entries),
             deployments: ($mds | length),
             replicas: ([$mds[].spec.replicas] | add),
             byType: ($mds | group_by(.spec.deploymentType) | map({key: .[0].spec.deploymentType, value: length}) | from_entries),
             wholeGpusRequested: ([$mds[] | select(.spec.gpu.count != null) | .spec.gpu.count * .spec.replicas] | add),
             wholeGpusPooled: ([$plan[] | select(.class == "whole") | .nodes | length] | add * 8),
             reservations: ($ptus | length)}}
