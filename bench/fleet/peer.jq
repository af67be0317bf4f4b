# The fleet benchmark's workers as a user without Waterline would write them: one
# apps/v1 Deployment per ModelDeployment of bench/fleet/objects.jq's output, for
# kube-scheduler and kube-controller-manager (the peer run of bench/fleet/fleet.sh).
#
#   jq -c -f bench/fleet/peer.jq < objects.json      # one Deployment per line
#
# Same namespace, name, replica count, image, args, ports and cpu/memory requests as the
# ModelDeployment. The GPU request is what the NVIDIA device plugin offers and what
# Waterline's own worker pods carry (controllers/planners/src/deployment.cc), in requests
# and limits:
#   gpu.count N          nvidia.com/gpu: N, on nodes labelled
#                        nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 (the Exclusive pools'
#                        product; without it a pod could land on a time-sliced L4 node,
#                        which also advertises nvidia.com/gpu)
#   gpu.migProfile P     nvidia.com/mig-P: 1 (MIG strategy mixed; only MIG nodes have it)
#   gpu.sharesPerGpu S   nvidia.com/gpu: 4 / S time-sliced replicas (the l4ts nodes run 4
#                        replicas per GPU: 1/4 GPU = 1 replica, 1/2 = 2), on nodes labelled
#                        nvidia.com/gpu.product=NVIDIA-L4-SHARED
# Placement rules: Standard -> nodeSelector topology.kubernetes.io/region = spec.region;
# DataZone -> waterline.dev/data-zone = spec.dataZone (the fixture's node label); Global ->
# no location constraint. No pool labels: at fleet scale every node is in a pool, and a
# pool is only a (region, shape) slice of the nodes the rules above already allow.
def gpuResources($gpu):
  if $gpu.count != null then {"nvidia.com/gpu": ($gpu.count | tostring)}
  elif $gpu.migProfile != null then {"nvidia.com/mig-\($gpu.migProfile)": "1"}
  else {"nvidia.com/gpu": ((4 / $gpu.sharesPerGpu) | floor | tostring)} end;
def product($gpu):
  if $gpu.count != null then {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
  elif $gpu.sharesPerGpu != null then {"nvidia.com/gpu.product": "NVIDIA-L4-SHARED"}
  else {} end;
def location($s):
  if $s.deploymentType == "Standard" then {"topology.kubernetes.io/region": $s.region}
  elif $s.deploymentType == "DataZone" then {"waterline.dev/data-zone": $s.dataZone}
  else {} end;

.deployments[]
| .spec as $s | .metadata.name as $name
| {apiVersion: "apps/v1", kind: "Deployment",
   metadata: {name: $name, namespace: .metadata.namespace,
              labels: {"waterline.dev/bench": "fleet-peer"}},
   spec: {replicas: $s.replicas,
          selector: {matchLabels: {app: $name}},
          template: {
            metadata: {labels: {app: $name, "waterline.dev/bench": "fleet-peer"}},
            spec: ({containers: [{name: "worker", image: $s.template.spec.image,
                                  args: $s.template.spec.args,
                                  ports: [$s.template.spec.ports[] | . + {protocol: "TCP"}],
                                  resources: {
                                    requests: ($s.template.spec.resources.requests + gpuResources($s.gpu)),
                                    limits: gpuResources($s.gpu)}}],
                    terminationGracePeriodSeconds: 30}
                   + ((product($s.gpu) + location($s)) as $sel
                      | if ($sel | length) > 0 then {nodeSelector: $sel} else {} end))}}}
