"""A twin-aware heuristic: greedy that knows the servers' queues only through the twin.

``twin-greedy`` decides per task between the vehicle's CPU and its serving server, like
``greedy``, but with the information a vehicle has in a network with or without a digital
twin (see the information model in :mod:`sim.observation`):

- always, the vehicle's own instantaneous report: its local and uplink backlog, its serving
  cell and equal band share, and its measured channel;
- with the twin on, the twin's predicted backlog of the serving server (stale by the twin's
  age of information, extrapolated to the decision time plus the twin's lead time) and,
  if asked, the twin's predicted channel from the projected position;
- with the twin off, nothing about the server's queue: its backlog is taken as zero.

So the value of the twin is measured without learning: the same policy with the twin on and
off differs only in what it knows about the servers.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.policies.base import Policy, register
from models.policies.heuristics import equal_share, local_time_and_energy, offload_to
from sim.channel import shannon_rate
from sim.observation import Actions, Observation


class TwinGreedyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backlog: Literal["estimate", "upper"] = Field(
        "estimate",
        description="the twin's predicted server backlog: with the estimated rates, or with "
        "the upper rates lambda_hat + eps of [19i]",
    )
    channel: Literal["measured", "predicted"] = Field(
        "measured",
        description="measured: the vehicle's own channel now; predicted: the twin's path gain "
        "at the projected position (falls back to measured without the twin)",
    )


def offload_latency_parts(
    obs: Observation, vehicle: np.ndarray, server: np.ndarray, channel: str
) -> tuple[np.ndarray, np.ndarray]:
    """Transmission time [s] at P_max with the equal cell share and the transmit power [W]."""
    share = equal_share(obs, server)
    power = obs.vehicle_power_max[vehicle]
    twin = obs.twin
    if channel == "predicted" and twin is not None:
        bw = share * obs.server_bandwidth[server]
        noise = obs.noise * bw if obs.noise_is_density else obs.noise
        rate = shannon_rate(
            bw, power * twin.predicted_gain(vehicle, server), twin.interference[server] + noise
        )
    else:
        rate = obs.rate(vehicle, server, share, power)
    return obs.task_size * obs.semantic_efficiency / rate, power


@register
class TwinGreedy(Policy):
    """Greedy between local and the serving server with the twin's view of the server."""

    id = "twin-greedy"
    Params = TwinGreedyParams

    def decide(self, obs: Observation) -> Actions:
        v = obs.task_vehicle
        w1 = obs.latency_weight
        lat_loc, e_loc = local_time_and_energy(obs)
        local = w1 * (lat_loc + obs.vehicle_local_backlog[v]) + (1 - w1) * e_loc
        srv = obs.vehicle_nearest[v]
        tx, power = offload_latency_parts(obs, v, srv, self.params.channel)
        lat_off = (
            obs.vehicle_uplink_backlog[v]
            + tx
            + obs.task_cycles * obs.edge_accuracy / (obs.server_cpu[srv])
        )
        if obs.twin is not None:
            twin = obs.twin
            backlog = (
                twin.server_backlog
                if self.params.backlog == "estimate"
                else (twin.server_backlog_max)
            )
            lat_off = lat_off + backlog[srv]
        offload = w1 * lat_off + (1 - w1) * power * tx
        return offload_to(obs, np.where(offload < local, srv, -1))
