# Blob Storage: two private containers (originals never share a container with what players fetch).
resource "azurerm_storage_account" "main" {
  #checkov:skip=CKV2_AZURE_40:SAS are signed with the account key (nginx's read-only container SAS, per-blob read SAS for players); user delegation SAS would need Entra ID identities in every role
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys; a customer-managed key needs Key Vault and an identity, an operator's choice
  #checkov:skip=CKV_AZURE_33:no queue service is used (the broker is Redis)
  name                            = "${var.name}${random_string.suffix.result}"
  resource_group_name             = azurerm_resource_group.main.name
  location                        = azurerm_resource_group.main.location
  account_tier                    = "Standard"
  account_replication_type        = "RAGZRS" # read-access secondary in the paired region: the edge's fallback origin
  account_kind                    = "StorageV2"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  public_network_access_enabled   = false # reached through its private endpoint only
  # The API signs SAS with the account key (per-blob read SAS; nginx's read-only container SAS).
  shared_access_key_enabled = true
  tags                      = var.tags

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  # The longest SAS the project signs is nginx's (STREAMIFY_NGINX_BLOB_SAS_DAYS, 365 by default).
  sas_policy {
    expiration_period = "366.00:00:00"
    expiration_action = "Log"
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
  }
}

# Players never reach the account: the edge and the API nodes do, through this private endpoint.
resource "azurerm_private_endpoint" "blob" {
  name                = "${var.name}-blob-pe"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.endpoints.id
  tags                = var.tags

  private_service_connection {
    name                           = "blob"
    private_connection_resource_id = azurerm_storage_account.main.id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "blob"
    private_dns_zone_ids = [azurerm_private_dns_zone.blob.id]
  }
}

# The read-only secondary (RA-GZRS) through a private endpoint of its own: the edge reads media from it when
# the primary fails (STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT; the same SAS is valid there).
resource "azurerm_private_endpoint" "blob_secondary" {
  name                = "${var.name}-blob-secondary-pe"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.endpoints.id
  tags                = var.tags

  private_service_connection {
    name                           = "blob-secondary"
    private_connection_resource_id = azurerm_storage_account.main.id
    subresource_names              = ["blob_secondary"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "blob-secondary"
    private_dns_zone_ids = [azurerm_private_dns_zone.blob.id]
  }
}

# Read, write and delete requests on the blob service go to Log Analytics.
resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "blob-logs"
  target_resource_id         = "${azurerm_storage_account.main.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

resource "random_string" "suffix" {
  length  = 6
  upper   = false
  special = false
}

resource "azurerm_storage_container" "media" {
  #checkov:skip=CKV2_AZURE_21:blob reads, writes and deletes are logged by azurerm_monitor_diagnostic_setting.blob (diagnostic settings, not classic storage insights)
  name                  = "streamify-media"
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "sources" {
  #checkov:skip=CKV2_AZURE_21:blob reads, writes and deletes are logged by azurerm_monitor_diagnostic_setting.blob (diagnostic settings, not classic storage insights)
  name                  = "streamify-sources"
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

# PostgreSQL flexible server inside the virtual network (no public endpoint).
resource "random_password" "postgres" {
  length  = 40
  special = false # it goes into a URL
}

resource "azurerm_postgresql_flexible_server" "main" {
  #checkov:skip=CKV2_AZURE_57:VNet-integrated (delegated subnet, private DNS zone, no public endpoint): the private-access alternative to a private endpoint
  name                          = "${var.name}-pg-${random_string.suffix.result}"
  resource_group_name           = azurerm_resource_group.main.name
  location                      = azurerm_resource_group.main.location
  version                       = "16"
  sku_name                      = var.postgres_sku
  storage_mb                    = var.postgres_storage_mb
  administrator_login           = "streamify"
  administrator_password        = random_password.postgres.result
  delegated_subnet_id           = azurerm_subnet.database.id
  private_dns_zone_id           = azurerm_private_dns_zone.postgres.id
  public_network_access_enabled = false
  backup_retention_days         = 14
  geo_redundant_backup_enabled  = true
  zone                          = "1"
  tags                          = var.tags

  dynamic "high_availability" {
    for_each = var.postgres_high_availability ? [1] : []
    content {
      mode                      = "ZoneRedundant"
      standby_availability_zone = "2"
    }
  }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.postgres]
}

resource "azurerm_postgresql_flexible_server_database" "main" {
  name      = "streamify"
  server_id = azurerm_postgresql_flexible_server.main.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

resource "azurerm_postgresql_flexible_server_configuration" "require_tls" {
  name      = "require_secure_transport"
  server_id = azurerm_postgresql_flexible_server.main.id
  value     = "on"
}

# Azure Cache for Redis (the Celery broker): TLS only, reached through a private endpoint.
resource "azurerm_redis_cache" "main" {
  name                          = "${var.name}-redis-${random_string.suffix.result}"
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  sku_name                      = var.redis_sku.name
  family                        = var.redis_sku.family
  capacity                      = var.redis_sku.capacity
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  tags                          = var.tags

  redis_configuration {
    maxmemory_policy = "noeviction" # a broker must never drop a queued message
  }
}

resource "azurerm_private_endpoint" "redis" {
  name                = "${var.name}-redis-pe"
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  subnet_id           = azurerm_subnet.endpoints.id
  tags                = var.tags

  private_service_connection {
    name                           = "redis"
    private_connection_resource_id = azurerm_redis_cache.main.id
    subresource_names              = ["redisCache"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "redis"
    private_dns_zone_ids = [azurerm_private_dns_zone.redis.id]
  }
}
