locals {
  playback_secret = coalesce(var.playback_secret, random_password.playback.result)

  # Secrets of the API nodes, workers and the migration job (Container Apps secrets, referenced by env vars).
  secrets = {
    "database-url"    = "postgresql+psycopg://streamify:${random_password.postgres.result}@${azurerm_postgresql_flexible_server.main.fqdn}:5432/${azurerm_postgresql_flexible_server_database.main.name}?sslmode=require"
    "broker-url"      = "rediss://:${azurerm_redis_cache.main.primary_access_key}@${azurerm_redis_cache.main.hostname}:${azurerm_redis_cache.main.ssl_port}/0?ssl_cert_reqs=CERT_REQUIRED"
    "storage"         = azurerm_storage_account.main.primary_connection_string
    "playback-secret" = local.playback_secret
  }
  secret_env = {
    STREAMIFY_DATABASE_URL            = "database-url"
    STREAMIFY_BROKER_URL              = "broker-url"
    STREAMIFY_AZURE_CONNECTION_STRING = "storage"
    STREAMIFY_PLAYBACK_SECRET         = "playback-secret"
  }
  plain_env = {
    STREAMIFY_AZURE_MEDIA_CONTAINER  = azurerm_storage_container.media.name
    STREAMIFY_AZURE_SOURCE_CONTAINER = azurerm_storage_container.sources.name
    STREAMIFY_SEGMENT_BASE_URL       = "/media" # players fetch media through Front Door -> the nginx edge
    STREAMIFY_AZURE_CORS_ORIGINS     = ""       # same origin as the pages: Blob Storage needs no CORS rule
    STREAMIFY_DATA_DIR               = "/var/lib/streamify"
  }
  api_name = "${var.name}-api"
  # settings.tmp_dir: resumable uploads (tmp/tus) and multipart uploads in flight (tmp/uploads). On the API nodes
  # it is the shared NFS share (scratch.tf), so every replica sees every partial upload and its flock.
  api_scratch = "${local.plain_env.STREAMIFY_DATA_DIR}/tmp"
}

resource "random_password" "playback" {
  length  = 48
  special = false
}

resource "azurerm_container_app_environment" "main" {
  name                       = "${var.name}-env"
  location                   = azurerm_resource_group.main.location
  resource_group_name        = azurerm_resource_group.main.name
  log_analytics_workspace_id = azurerm_log_analytics_workspace.main.id
  infrastructure_subnet_id   = azurerm_subnet.apps.id
  tags                       = var.tags
}

# API nodes: internal ingress only (the edge reaches them as http://<name>; the environment's ingress spreads
# requests over healthy replicas: readiness = /readyz, which checks database, broker and storage).
resource "azurerm_container_app" "api" {
  name                         = local.api_name
  container_app_environment_id = azurerm_container_app_environment.main.id
  resource_group_name          = azurerm_resource_group.main.name
  revision_mode                = "Single"
  tags                         = var.tags

  dynamic "secret" {
    for_each = local.secrets
    content {
      name  = secret.key
      value = secret.value
    }
  }
  dynamic "secret" {
    for_each = var.registry == null ? [] : [1]
    content {
      name  = "registry-password"
      value = var.registry.password
    }
  }
  dynamic "registry" {
    for_each = var.registry == null ? [] : [1]
    content {
      server               = var.registry.server
      username             = var.registry.username
      password_secret_name = "registry-password"
    }
  }

  ingress {
    external_enabled           = false
    allow_insecure_connections = true # plain HTTP inside the environment, from the edge only
    target_port                = 8000
    transport                  = "http"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = var.api_replicas.min
    max_replicas = var.api_replicas.max

    http_scale_rule {
      name                = "http"
      concurrent_requests = "50"
    }

    volume {
      name         = "scratch"
      storage_type = "NfsAzureFile"
      storage_name = azurerm_container_app_environment_storage.scratch.name
    }

    # A new NFS share's root belongs to root and the image runs as the unprivileged user `streamify`: open it
    # up (sticky bit: only a file's owner deletes it). The share is mounted by the API replicas only.
    init_container {
      name    = "scratch-permissions"
      image   = var.nginx_image # any image that runs as root and has chmod; the edge pulls this one already
      cpu     = 0.25
      memory  = "0.5Gi"
      command = ["chmod", "1777", "/scratch"]

      volume_mounts {
        name = "scratch"
        path = "/scratch"
      }
    }

    container {
      name    = "api"
      image   = var.image
      cpu     = 1.0
      memory  = "2Gi"
      command = ["streamify", "api", "--host", "0.0.0.0", "--port", "8000"]

      dynamic "env" {
        for_each = local.secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }
      dynamic "env" {
        for_each = merge(local.plain_env, { FORWARDED_ALLOW_IPS = "*" })
        content {
          name  = env.key
          value = env.value
        }
      }

      volume_mounts {
        name = "scratch"
        path = local.api_scratch
      }

      startup_probe {
        transport               = "HTTP"
        port                    = 8000
        path                    = "/healthz"
        interval_seconds        = 5
        failure_count_threshold = 10
      }
      liveness_probe {
        transport        = "HTTP"
        port             = 8000
        path             = "/healthz"
        interval_seconds = 10
      }
      readiness_probe {
        transport               = "HTTP"
        port                    = 8000
        path                    = "/readyz"
        interval_seconds        = 10
        failure_count_threshold = 3
      }
    }
  }
}

# Transcode workers: no ingress. Scratch space for encodes is the replica's ephemeral storage.
resource "azurerm_container_app" "worker" {
  name                         = "${var.name}-worker"
  container_app_environment_id = azurerm_container_app_environment.main.id
  resource_group_name          = azurerm_resource_group.main.name
  revision_mode                = "Single"
  tags                         = var.tags

  dynamic "secret" {
    for_each = local.secrets
    content {
      name  = secret.key
      value = secret.value
    }
  }
  dynamic "secret" {
    for_each = var.registry == null ? [] : [1]
    content {
      name  = "registry-password"
      value = var.registry.password
    }
  }
  dynamic "registry" {
    for_each = var.registry == null ? [] : [1]
    content {
      server               = var.registry.server
      username             = var.registry.username
      password_secret_name = "registry-password"
    }
  }

  template {
    min_replicas = var.worker_count
    max_replicas = var.worker_count

    container {
      name    = "worker"
      image   = var.image
      cpu     = 2.0
      memory  = "4Gi"
      command = ["streamify", "worker", "--concurrency", "1"]

      dynamic "env" {
        for_each = local.secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }
      dynamic "env" {
        for_each = local.plain_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

# Migrations: a manual job, run once per release before the API nodes roll (infra/README.md, step 5).
resource "azurerm_container_app_job" "migrate" {
  name                         = "${var.name}-migrate"
  location                     = azurerm_resource_group.main.location
  resource_group_name          = azurerm_resource_group.main.name
  container_app_environment_id = azurerm_container_app_environment.main.id
  replica_timeout_in_seconds   = 600
  replica_retry_limit          = 1
  tags                         = var.tags

  manual_trigger_config {
    parallelism              = 1
    replica_completion_count = 1
  }

  dynamic "secret" {
    for_each = local.secrets
    content {
      name  = secret.key
      value = secret.value
    }
  }
  dynamic "secret" {
    for_each = var.registry == null ? [] : [1]
    content {
      name  = "registry-password"
      value = var.registry.password
    }
  }
  dynamic "registry" {
    for_each = var.registry == null ? [] : [1]
    content {
      server               = var.registry.server
      username             = var.registry.username
      password_secret_name = "registry-password"
    }
  }

  template {
    container {
      name    = "migrate"
      image   = var.image
      cpu     = 0.5
      memory  = "1Gi"
      command = ["streamify", "migrate"]

      dynamic "env" {
        for_each = local.secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }
      dynamic "env" {
        for_each = local.plain_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
}

# The edge: nginx with the config the project renders (infra/nginx/nginx.conf.j2): /media/ from its disk cache
# of the media container (its own read-only SAS), private media signatures checked here, the rest to the API.
# An init container renders the config from the same settings into a shared volume, like compose's nginx-config.
resource "azurerm_container_app" "edge" {
  name                         = "${var.name}-edge"
  container_app_environment_id = azurerm_container_app_environment.main.id
  resource_group_name          = azurerm_resource_group.main.name
  revision_mode                = "Single"
  tags                         = var.tags

  secret {
    name  = "storage"
    value = azurerm_storage_account.main.primary_connection_string
  }
  secret {
    name  = "playback-secret"
    value = local.playback_secret
  }
  dynamic "secret" {
    for_each = var.registry == null ? [] : [1]
    content {
      name  = "registry-password"
      value = var.registry.password
    }
  }
  dynamic "registry" {
    for_each = var.registry == null ? [] : [1]
    content {
      server               = var.registry.server
      username             = var.registry.username
      password_secret_name = "registry-password"
    }
  }

  ingress {
    external_enabled = true # Front Door's origin
    target_port      = 8080
    transport        = "http"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = var.edge_replicas.min
    max_replicas = var.edge_replicas.max

    http_scale_rule {
      name                = "http"
      concurrent_requests = "200"
    }

    volume {
      name         = "nginx-conf"
      storage_type = "EmptyDir"
    }
    volume {
      name         = "nginx-cache"
      storage_type = "EmptyDir"
    }

    init_container {
      name   = "nginx-config"
      image  = var.image
      cpu    = 0.25
      memory = "0.5Gi"
      command = ["python", "-m", "infra.nginx", "render",
        "--out", "/etc/streamify-nginx/nginx.conf",
        "--node", "${local.api_name}:80",
        "--listen", "8080",
      "--state-dir", "/var/cache/nginx"]

      env {
        name        = "STREAMIFY_AZURE_CONNECTION_STRING"
        secret_name = "storage"
      }
      env {
        name        = "STREAMIFY_PLAYBACK_SECRET"
        secret_name = "playback-secret"
      }
      env {
        name  = "STREAMIFY_AZURE_MEDIA_CONTAINER"
        value = azurerm_storage_container.media.name
      }
      env {
        name  = "STREAMIFY_AZURE_SECONDARY_BLOB_ENDPOINT" # nginx's fallback origin while the primary fails
        value = azurerm_storage_account.main.secondary_blob_endpoint
      }
      env {
        name  = "STREAMIFY_MAX_UPLOAD_BYTES"
        value = tostring(10 * 1024 * 1024 * 1024)
      }
      env {
        name  = "STREAMIFY_NGINX_CACHE_MAX_SIZE" # must fit the replica's ephemeral storage (EmptyDir)
        value = "3g"
      }
      volume_mounts {
        name = "nginx-conf"
        path = "/etc/streamify-nginx"
      }
    }

    container {
      name    = "nginx"
      image   = var.nginx_image
      cpu     = 0.5
      memory  = "1Gi"
      command = ["nginx", "-c", "/etc/streamify-nginx/nginx.conf", "-g", "daemon off;"]

      volume_mounts {
        name = "nginx-conf"
        path = "/etc/streamify-nginx"
      }
      volume_mounts {
        name = "nginx-cache"
        path = "/var/cache/nginx"
      }

      liveness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/nginx-healthz"
      }
      readiness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/nginx-healthz"
      }
    }
  }
}
