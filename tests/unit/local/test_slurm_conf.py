"""The local Slurm's generated configuration: one static node by default; with elastic nodes, partition cpu is a
power-saving node group (CLOUD nodes, our Resume/SuspendProgram, the floor's include file) and the node group is
what the scaling Lambda's local actuator is given."""

from __future__ import annotations

import json

from helixflow_local.slurm import FLOOR_CONF, LocalSlurm


def test_the_default_cluster_is_this_machine_as_one_node(tmp_path):
    conf = LocalSlurm(tmp_path, cpus=2).slurm_conf()
    assert "NodeName=helixflow " in conf and "PartitionName=cpu Nodes=ALL " in conf
    assert "State=CLOUD" not in conf and "ResumeProgram" not in conf and "SuspendTime" not in conf
    assert "HELIXFLOW_LOCAL_SLURM_GROUPS" not in LocalSlurm(tmp_path, cpus=2).environment()


def test_elastic_nodes_are_a_power_saving_node_group_of_partition_cpu(tmp_path):
    slurm = LocalSlurm(tmp_path, gpus=0, elastic_nodes=3)
    lines = slurm.slurm_conf().splitlines()
    nodes = [line for line in lines if line.startswith("NodeName=")]
    assert [n.split()[0] for n in nodes] == ["NodeName=elastic1", "NodeName=elastic2", "NodeName=elastic3"]
    assert all("State=CLOUD" in n and "CPUs=1 " in n and "NodeAddr=127.0.0.1" in n for n in nodes)
    assert len({n.split("Port=")[1].split()[0] for n in nodes}) == 3  # one slurmd per node, each its own port
    assert "PartitionName=cpu Nodes=elastic1,elastic2,elastic3 Default=YES MaxTime=INFINITE State=UP" in lines
    assert f"ResumeProgram={tmp_path.resolve() / 'power' / 'resume'}" in lines and "PrivateData=cloud" in lines
    assert lines.index(f"Include {tmp_path.resolve() / FLOOR_CONF}") > lines.index("SuspendTime=5")
    assert json.loads(slurm.environment()["HELIXFLOW_LOCAL_SLURM_GROUPS"]) == {"cpu": ["elastic1", "elastic2",
                                                                                       "elastic3"]}


def test_the_power_programs_name_only_paths_we_chose(tmp_path):
    from helixflow_local.slurm_power import program

    text = program("/venv/bin/python", tmp_path / "tools", "resume", tmp_path / "slurm.conf")
    assert text.startswith("#!/venv/bin/python -I\n")
    assert f"main(['resume', {str(tmp_path / 'slurm.conf')!r}, *sys.argv[1:]])" in text
