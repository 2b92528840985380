# Streamify on Azure: Front Door (load balancer with health probes, optional CDN for segments) -> nginx edge
# (Container App) -> API nodes (Container App, >= 2 replicas) + Celery workers, PostgreSQL flexible server,
# Azure Cache for Redis, Blob Storage. Walkthrough: infra/README.md.

terraform {
  required_version = ">= 1.6.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.53" # azurerm_container_app_environment_storage.nfs_server_url
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}
