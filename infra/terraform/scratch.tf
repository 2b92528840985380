# Shared scratch space for the API nodes: an NFS Azure Files share mounted at the data dir's tmp/ on every API
# replica. Resumable (tus) uploads keep the bytes received so far under tmp/tus/ and serialize requests with an
# exclusive flock per upload; with replica-local disks a resumed PATCH or HEAD routed to another replica found
# nothing (404) and a replica that scaled in took its partial uploads with it. Why NFS and not SMB or sticky
# sessions: infra/README.md, "Shared scratch for resumable uploads".
#
# NFS shares exist only in Premium FileStorage accounts, and NFS has no encryption in transit, so the account
# must not require secure transfer: hence an account of its own (the blob account keeps HTTPS-only). NFS
# authenticates by network only: no public network access, reached through its private endpoint from the VNet.
resource "azurerm_storage_account" "scratch" {
  #checkov:skip=CKV_AZURE_3:NFS 4.1 Azure Files has no encryption in transit and refuses to mount with secure transfer required; traffic stays in the VNet (private endpoint only, no public network access)
  #checkov:skip=CKV2_AZURE_40:NFS ignores account keys (network-only auth); disabling shared keys breaks azurerm's share management (hashicorp/terraform-provider-azurerm#30815)
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys; a customer-managed key needs Key Vault and an identity, an operator's choice
  #checkov:skip=CKV_AZURE_206:NFS shares support LRS and ZRS only (no GRS); ZRS keeps the share up when a zone fails, and the data is scratch
  #checkov:skip=CKV2_AZURE_38:the check wants blob soft delete and fails every FileStorage account; share soft delete is on (share_properties.retention_policy)
  name                            = "${var.name}tmp${random_string.suffix.result}"
  resource_group_name             = azurerm_resource_group.main.name
  location                        = azurerm_resource_group.main.location
  account_tier                    = "Premium"
  account_kind                    = "FileStorage"
  account_replication_type        = "ZRS"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = false # required for NFS mounts (see the skip above)
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = false # reached through its private endpoint only
  shared_access_key_enabled       = true  # azurerm manages the share with the key; no app gets it (NFS has no keys)
  tags                            = var.tags

  share_properties {
    retention_policy {
      days = 7 # a share deleted by mistake can be undeleted for a week
    }
  }

  sas_policy {
    expiration_period = "1.00:00:00" # nothing signs SAS for this account
    expiration_action = "Log"
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
  }
}

resource "azurerm_storage_share" "scratch" {
  name               = "streamify-scratch"
  storage_account_id = azurerm_storage_account.scratch.id
  enabled_protocol   = "NFS"
  quota              = var.scratch_share_gib # provisioned (and billed) size; also what the API sees as free space
}

resource "azurerm_private_dns_zone" "file" {
  name                = "privatelink.file.core.windows.net"
  resource_group_name = azurerm_resource_group.main.name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "file" {
  name                  = "file"
  resource_group_name   = azurerm_resource_group.main.name
  private_dns_zone_name = azurerm_private_dns_zone.file.name
  virtual_network_id    = azurerm_virtual_network.main.id
}

# The API replicas mount <account>.file.core.windows.net, which resolves to this endpoint's private address.
# NSGs: NFS is TCP 2049 from the apps subnet to the endpoints subnet, allowed by the default VNet rules.
resource "azurerm_private_endpoint" "scratch" {
  name                = "${var.name}-scratch-pe"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.endpoints.id
  tags                = var.tags

  private_service_connection {
    name                           = "file"
    private_connection_resource_id = azurerm_storage_account.scratch.id
    subresource_names              = ["file"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "file"
    private_dns_zone_ids = [azurerm_private_dns_zone.file.id]
  }
}

# The share registered with the environment; the API app mounts it as a volume (apps.tf).
resource "azurerm_container_app_environment_storage" "scratch" {
  name                         = "api-scratch"
  container_app_environment_id = azurerm_container_app_environment.main.id
  nfs_server_url               = azurerm_storage_account.scratch.primary_file_host
  share_name                   = "/${azurerm_storage_account.scratch.name}/${azurerm_storage_share.scratch.name}"
  access_mode                  = "ReadWrite"

  # Replicas can only mount once the name resolves to the private endpoint.
  depends_on = [azurerm_private_endpoint.scratch, azurerm_private_dns_zone_virtual_network_link.file]
}
