"""The homes of generation behind one interface (`fimls.contract.Backend`): the model in this process, the shared daemon's client and a team's inference server's client."""
