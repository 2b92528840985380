variable "subscription_id" {
  description = "Azure subscription to deploy into."
  type        = string
}

variable "name" {
  description = "Prefix of every resource name: 3-11 lowercase letters or digits (storage account names are global)."
  type        = string
  default     = "streamify"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,10}$", var.name))
    error_message = "name must be 3-11 lowercase letters or digits, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "image" {
  description = "The Streamify image (built from the repository's Dockerfile and pushed to your registry), e.g. myacr.azurecr.io/streamify:0.1.0."
  type        = string
}

variable "nginx_image" {
  description = "The nginx image of the edge (any nginx >= 1.22 with the auth_request and secure_link modules: the official images have both)."
  type        = string
  default     = "nginx:1.27-alpine"
}

variable "registry" {
  description = "Private registry holding `image` (null: a public image)."
  type = object({
    server   = string
    username = string
    password = string
  })
  default   = null
  sensitive = true
}

variable "api_replicas" {
  description = "API nodes: min and max replicas (HTTP scale rule between them). At least 2, so one can die."
  type        = object({ min = number, max = number })
  default     = { min = 2, max = 6 }

  validation {
    condition     = var.api_replicas.min >= 2 && var.api_replicas.max >= var.api_replicas.min
    error_message = "api_replicas.min must be >= 2 and max >= min."
  }
}

variable "worker_count" {
  description = "Transcode workers (one ffmpeg each, 2 vCPU). Fixed: the queue lives in PostgreSQL, so no queue-length scaler fits."
  type        = number
  default     = 2
}

variable "edge_replicas" {
  description = "nginx edge replicas (each keeps its own disk cache of media blobs)."
  type        = object({ min = number, max = number })
  default     = { min = 2, max = 4 }
}

variable "enable_cdn" {
  description = "Cache /media/* at Front Door's edge (the CDN option for segments). Private media is never cached there: nginx marks it Cache-Control: private."
  type        = bool
  default     = true
}

variable "postgres_sku" {
  description = "PostgreSQL flexible server SKU."
  type        = string
  default     = "GP_Standard_D2ds_v5"
}

variable "postgres_storage_mb" {
  description = "PostgreSQL storage (MB)."
  type        = number
  default     = 32768
}

variable "postgres_high_availability" {
  description = "Zone-redundant standby for PostgreSQL (doubles its cost)."
  type        = bool
  default     = false
}

variable "redis_sku" {
  description = "Azure Cache for Redis: sku name, family and capacity."
  type        = object({ name = string, family = string, capacity = number })
  default     = { name = "Standard", family = "C", capacity = 1 }
}

variable "playback_secret" {
  description = "STREAMIFY_PLAYBACK_SECRET shared by API nodes and the edge (>= 32 characters). null: one is generated and kept in the Terraform state."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.playback_secret == null || length(coalesce(var.playback_secret, "x")) >= 32
    error_message = "playback_secret must be at least 32 characters."
  }
}

variable "vnet_cidr" {
  description = "Address space of the virtual network (apps /23, database /28, private endpoints /28 are cut from it)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { app = "streamify" }
}

variable "scratch_share_gib" {
  description = "Size of the NFS share the API nodes keep partial resumable uploads (and multipart uploads in flight) on. Provisioned SSD: billed on this size, and its IOPS and throughput grow with it. At least 100 (the premium minimum); at least STREAMIFY_MAX_UPLOAD_BYTES times the uploads you expect in flight at once."
  type        = number
  default     = 100

  validation {
    condition     = var.scratch_share_gib >= 100 && var.scratch_share_gib <= 102400
    error_message = "scratch_share_gib must be between 100 and 102400 (premium file share limits)."
  }
}
